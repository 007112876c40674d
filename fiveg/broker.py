"""Broker accounts for the local-5G trial devices (``mebuku.broker`` entry point).

The registry does not tie a device to one site (a phone on a bus roams between sites), so
a device may publish under each site of the trials it is registered in, and only there.
"""

from __future__ import annotations

import psycopg

from core.broker import Account, fiveg_account


def broker_accounts(conn: psycopg.Connection) -> list[Account]:
    """Broker accounts of every trial device, limited to the sites of the trials it is in."""
    rows = conn.execute(
        "SELECT d.device_id, array_agg(DISTINCT s.site->>'site_id'), "
        "       string_agg(DISTINCT d.trial_id, ', ')"
        " FROM fiveg_trial_devices d"
        " JOIN fiveg_trials t USING (trial_id)"
        " CROSS JOIN LATERAL jsonb_array_elements(t.sites) AS s(site)"
        " WHERE s.site->>'site_id' IS NOT NULL"
        " GROUP BY d.device_id ORDER BY d.device_id"
    ).fetchall()
    return [
        fiveg_account(device, sites, f"5G device in {trials}") for device, sites, trials in rows
    ]
