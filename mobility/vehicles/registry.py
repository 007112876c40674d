"""The bus vehicle registry: the vehicles that may publish on the broker.

A vehicle's id is its broker user name; ``mebuku broker acl`` lets it publish only
``maebashi/bus/{vehicle_id}/telemetry|event``. Retired vehicles keep their row (history)
but lose their topics at the next ACL generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from core.broker import SAFE_ID, Account, bus_account
from core.i18n import cli_gettext as _


class VehicleError(ValueError):
    """A registration the registry refuses (the message says why)."""


@dataclass(frozen=True)
class Vehicle:
    """A registered bus: only registered vehicles get broker accounts."""

    vehicle_id: str
    operator_id: str
    label: str
    registered_at: datetime
    retired_at: datetime | None


def add_vehicle(
    conn: psycopg.Connection, vehicle_id: str, operator_id: str, label: str = ""
) -> Vehicle:
    """Register a vehicle (or bring a retired one back, under the same operator)."""
    if not SAFE_ID.fullmatch(vehicle_id):
        raise VehicleError(
            _("vehicle id {id} must be 1-64 of A-Z a-z 0-9 . _ - (one topic level)").format(
                id=repr(vehicle_id)
            )
        )
    if not operator_id.strip() or len(operator_id) > 64 or any(c.isspace() for c in operator_id):
        raise VehicleError(
            _("operator id {id} must be 1-64 characters, no spaces").format(id=repr(operator_id))
        )
    if len(label) > 200 or "\x00" in label:
        raise VehicleError(_("label must be at most 200 characters, no NUL"))
    row = conn.execute(
        "INSERT INTO mobility_vehicles (vehicle_id, operator_id, label) VALUES (%s, %s, %s)"
        " ON CONFLICT (vehicle_id) DO UPDATE SET retired_at = NULL, label = EXCLUDED.label"
        " WHERE mobility_vehicles.operator_id = EXCLUDED.operator_id"
        " RETURNING vehicle_id, operator_id, label, registered_at, retired_at",
        [vehicle_id, operator_id, label],
    ).fetchone()
    if row is None:
        raise VehicleError(
            _("vehicle {id} is registered to another operator").format(id=repr(vehicle_id))
        )
    return Vehicle(*row)


def retire_vehicle(conn: psycopg.Connection, vehicle_id: str) -> bool:
    """Take a vehicle off the broker (at the next ACL generation); False if unknown."""
    cur = conn.execute(
        "UPDATE mobility_vehicles SET retired_at = now()"
        " WHERE vehicle_id = %s AND retired_at IS NULL",
        [vehicle_id],
    )
    return cur.rowcount == 1


def list_vehicles(conn: psycopg.Connection, *, include_retired: bool = False) -> list[Vehicle]:
    """The registered vehicles, retired ones only when asked."""
    rows = conn.execute(
        "SELECT vehicle_id, operator_id, label, registered_at, retired_at FROM mobility_vehicles"
        " WHERE %s OR retired_at IS NULL ORDER BY vehicle_id",
        [include_retired],
    ).fetchall()
    return [Vehicle(*r) for r in rows]


def broker_accounts(conn: psycopg.Connection) -> list[Account]:
    """``mebuku.broker`` entry point: one account per active vehicle."""
    return [bus_account(v.vehicle_id, f"bus of {v.operator_id}") for v in list_vehicles(conn)]
