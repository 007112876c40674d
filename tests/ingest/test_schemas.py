"""docs/schemas agree with the parser: examples validate and parse; rejects fail both."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.parse import parse_message
from ingest.rows import Reject, Rows
from ingest.streams import STREAMS

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
_IDS = {"vehicle_id": "av-01", "site_id": "maebashi-station", "device_id": "phone-1"}
# Every stream of the catalogue (ingest/streams.py), with its schema file.
TOPICS = {s.schema: s.topic_for(**{k: _IDS[k] for k in s.ids}) for s in STREAMS}
T = "2026-11-26T09:00:00+09:00"
BAD = {
    "bus-telemetry.json": [
        {"ts": T, "lat": 95, "lon": 139.0},
        {"ts": 0, "lat": 36.0, "lon": 139.0},  # epoch ms before 2000
        {"ts": T, "lat": 36.0, "lon": 139.0, "seq": 2**63},  # beyond bigint
        {"ts": T, "lat": 36.0, "lon": 139.0, "trip_id": ""},
    ],
    "bus-event.json": [
        {"ts": T, "type": "takeover", "cause": "ufo"},
        {"ts": 946684799999, "type": "takeover"},
        {"ts": T, "type": "take over"},
    ],
    "fiveg-radio.json": [
        {"ts": T, "rsrp_dbm": -20},
        {"ts": 1e3, "rsrp_dbm": -90},
        {"ts": T, "rsrp_dbm": -90, "cell_id": 10**40},
    ],
    "fiveg-senml.json": [
        [{"n": "x", "v": 1, "q_": 2}],
        [{"n": "x", "vs": "a" * 1001}],
        [],
    ],
}


@pytest.mark.parametrize("name", sorted(TOPICS))
def test_schema_examples_parse_and_bad_payloads_fail_both(name: str) -> None:
    try:  # a dev dependency: missing means a broken environment, never a silent skip
        import jsonschema_rs
    except ModuleNotFoundError:
        pytest.fail("jsonschema-rs is not installed: run scripts/bootstrap.sh (installs .[dev])")
    schema = json.loads((SCHEMAS / name).read_text())
    v = jsonschema_rs.Draft202012Validator(schema)
    for ex in schema["examples"]:
        v.validate(ex)
        assert isinstance(parse_message(TOPICS[name], json.dumps(ex).encode(), NOW), Rows)
    for bad in BAD.get(name, []):
        assert not v.is_valid(bad), bad
        assert isinstance(parse_message(TOPICS[name], json.dumps(bad).encode(), NOW), Reject), bad


def test_every_topic_has_a_schema() -> None:
    assert sorted(p.name for p in SCHEMAS.glob("*.json")) == sorted(TOPICS)
