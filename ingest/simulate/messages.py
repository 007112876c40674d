"""What every simulator yields: a message with its simulated time and whether it is valid."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any


@dataclass(frozen=True)
class SimMessage:
    """A message to publish, carrying its simulated time and truth flags so tests can
    check what ingest did with each one."""

    ts: datetime
    topic: str
    payload: bytes
    kind: str  # telemetry | event | radio | senml | status
    valid: bool = True  # False when fault injection made it malformed
    duplicate: bool = False  # True for an injected second copy


JST = timezone(timedelta(hours=9), "JST")


def rfc3339(ts: datetime) -> str:
    """Japan Standard Time with its offset, as Maebashi's devices would report it."""
    return ts.astimezone(JST).isoformat(timespec="milliseconds")


def dumps(obj: dict[str, Any] | list[Any]) -> bytes:
    """Compact UTF-8 JSON, Japanese kept as characters, as the devices send it."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
