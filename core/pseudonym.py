"""Keyed hashes for personal identifiers (certificate serials, IC card IDs).

A plain hash of a 16-hex-digit card ID can be reversed by trying every ID; an HMAC with a
secret key from the environment cannot, yet still gives a stable lookup key. The purpose
string separates domains so the same value hashes differently per use.
"""

from __future__ import annotations

import hashlib
import hmac


def keyed_hash(key: bytes, purpose: str, value: str) -> bytes:
    """HMAC-SHA256 of a personal identifier, separated by purpose, so a stolen table cannot be
    reversed or joined with another purpose's table without the key."""
    if not key:
        raise ValueError("pseudonym key is empty")
    msg = purpose.encode() + b"\x00" + value.encode()
    return hmac.new(key, msg, hashlib.sha256).digest()
