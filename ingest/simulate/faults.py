"""Fault injection: duplicates, out-of-order delivery and malformed payloads.

Each malformed message is made from a distinct valid one, so its bytes are distinct too
(the dead letter keeps one row per distinct (topic, payload)).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace

from ingest.simulate.messages import SimMessage


@dataclass(frozen=True)
class Faults:
    """How unreliable the network and devices are, so the ingest path is tested against
    duplicates, reordering and garbage at known rates."""

    duplicates: float = 0.0  # share of messages sent twice
    out_of_order: float = 0.0  # share held back behind 1..50 later messages
    malformed: float = 0.0  # share made invalid


def corrupt(m: SimMessage, rng: random.Random) -> SimMessage:
    """An invalid copy of ``m`` (truncated, unknown topic, wrong type or out of range):
    each kind of bad input the parser must send to the dead letters."""
    kind = rng.randrange(4)
    if kind == 0:  # truncated JSON
        payload = m.payload[: max(1, len(m.payload) // 2)]
        topic = m.topic
    elif kind == 1:  # unknown topic under maebashi/
        payload, topic = m.payload, m.topic.rsplit("/", 1)[0] + "/unknown"
    else:
        doc = json.loads(m.payload)
        if not isinstance(doc, dict):
            doc = {"pack": doc}
        topic = m.topic
        if kind == 2:  # wrong type
            doc["ts"] = {"when": doc.get("ts")}
        else:  # out of range / invalid value
            doc["lat"] = 123.0 + rng.random()
            doc["rsrp_dbm"] = 10.0
            doc["type"] = 42
            doc["status"] = 42  # device heartbeats
            doc["ts"] = doc.get("ts", 0)
        payload = json.dumps(doc).encode()
    return replace(m, topic=topic, payload=payload, valid=False)


def inject(msgs: Iterator[SimMessage], faults: Faults, rng: random.Random) -> Iterator[SimMessage]:
    """``msgs`` with the faults applied, as a real network would deliver them; lazily, so
    a long run keeps only the held-back messages in memory."""
    held: list[tuple[int, SimMessage]] = []
    for n, msg in enumerate(msgs, start=1):
        m = msg
        if faults.malformed and rng.random() < faults.malformed:
            m = corrupt(m, rng)
        if faults.out_of_order and rng.random() < faults.out_of_order:
            held.append((n + rng.randint(1, 50), m))
        else:
            yield m
        if faults.duplicates and rng.random() < faults.duplicates:
            held.append((n + rng.randint(0, 20), replace(m, duplicate=True)))
        due = [h for h in held if h[0] <= n]
        if due:
            held = [h for h in held if h[0] > n]
            for _, h in due:
                yield h
    for _, h in held:
        yield h
