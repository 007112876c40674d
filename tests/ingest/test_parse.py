"""Pure parser tests: no I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.parse import parse_message
from ingest.rows import Reject, Rows

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def tele(**kw):
    d = {
        "ts": "2026-11-26T11:59:58.250+09:00",
        "seq": 7,
        "lat": 36.38373,
        "lon": 139.072877,
        "speed_mps": 5.2,
        "heading_deg": 12.5,
        "odometer_m": 1234.5,
        "mode": "autonomous",
        "door_open": False,
        "passengers": 11,
        "trip_id": "t1",
        "route_id": "r1",
        "soc_pct": 80,
    }
    d.update(kw)
    return json.dumps({k: v for k, v in d.items() if v is not ...}).encode()


def test_telemetry_row_in_column_order():
    res = parse_message("maebashi/bus/av-01/telemetry", tele(), NOW)
    assert isinstance(res, Rows)
    assert res.table.name == "bus_telemetry"
    (row,) = res.rows
    assert row[0] == "av-01"
    assert row[1] == datetime(2026, 11, 26, 2, 59, 58, 250000, tzinfo=UTC)
    assert dict(zip(res.table.columns, row, strict=True))["mode"] == "autonomous"


def test_epoch_milliseconds_timestamp():
    ms = int(NOW.timestamp() * 1000) - 1500
    res = parse_message("maebashi/bus/av-01/telemetry", tele(ts=ms), NOW)
    assert isinstance(res, Rows)
    assert res.rows[0][1] == NOW - timedelta(milliseconds=1500)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{not json", "bad_json"),
        (b"\xff\xfe", "bad_utf8"),
        (b"[1, 2]", "not_object"),
        (tele(lat=91), "out_of_range"),
        (tele(lat="36.3"), "wrong_type"),
        (tele(lat=True), "wrong_type"),
        (tele(lat=...), "missing_field"),
        (tele(ts=...), "missing_field"),
        (tele(ts="2026-11-26T03:00:00"), "bad_timestamp"),  # no offset
        (tele(ts="yesterday"), "bad_timestamp"),
        (tele(ts="1999-12-31T23:59:59Z"), "bad_timestamp"),
        (tele(ts="2026-11-26T04:00:00Z"), "bad_timestamp"),  # an hour in the future
        (tele(mode="teleport"), "out_of_range"),
        (tele(heading_deg=360), "out_of_range"),
        (tele(speed_mps=-1), "out_of_range"),
        (tele(soc_pct=101), "out_of_range"),
        (tele(passengers=2.5), "wrong_type"),
        (tele(trip_id="a\x00b"), "bad_text"),
        (b'{"ts": 1, "lat": NaN, "lon": 1}', "bad_json"),
    ],
)
def test_telemetry_rejects(payload, code):
    res = parse_message("maebashi/bus/av-01/telemetry", payload, NOW)
    assert isinstance(res, Reject), res
    assert res.code == code


def test_unknown_topics_are_rejected():
    for topic in ("maebashi/bus/av-01/position", "maebashi/x", "maebashi/bus//telemetry"):
        res = parse_message(topic, tele(), NOW)
        assert isinstance(res, Reject) and res.code == "unknown_topic"


def test_event_with_cause_and_detail():
    p = json.dumps(
        {
            "ts": "2026-11-26T02:59:00Z",
            "type": "takeover",
            "cause": "parked_vehicle",
            "detail": {"note": "路上駐車"},
        }
    ).encode()
    res = parse_message("maebashi/bus/av-01/event", p, NOW)
    assert isinstance(res, Rows)
    row = res.rows[0]
    assert row[2:4] == ("takeover", "parked_vehicle")
    assert json.loads(row[4]) == {"note": "路上駐車"}
    bad = json.dumps({"ts": "2026-11-26T02:59:00Z", "type": "takeover", "cause": "ufo"})
    assert isinstance(parse_message("maebashi/bus/av-01/event", bad.encode(), NOW), Reject)


def test_radio_ranges_follow_3gpp():
    ok = {"ts": "2026-11-26T02:59:00Z", "rsrp_dbm": -85.5, "sinr_db": 18, "cell_id": 12345}
    res = parse_message("maebashi/5g/s1/phone-1/radio", json.dumps(ok).encode(), NOW)
    assert isinstance(res, Rows)
    cols = dict(zip(res.table.columns, res.rows[0], strict=True))
    assert cols["site_id"] == "s1" and cols["rsrp_dbm"] == -85.5 and cols["cell_id"] == "12345"
    for bad in ({"rsrp_dbm": -20}, {"rsrq_db": -50}, {"sinr_db": 41}, {"pci": 1008}, {}):
        p = json.dumps({"ts": "2026-11-26T02:59:00Z", **bad}).encode()
        res = parse_message("maebashi/5g/s1/phone-1/radio", p, NOW)
        assert isinstance(res, Reject), bad


def senml(pack):
    return parse_message("maebashi/5g/s1/dev-1/senml", json.dumps(pack).encode(), NOW)


def test_senml_rfc8428_example_resolves_base_fields():
    # RFC 8428 section 5.1.2-like pack: base name, base time, base unit, relative t.
    bt = NOW.timestamp() - 60
    res = senml(
        [
            {
                "bn": "urn:dev:ow:10e2073a01080063:",
                "bt": bt,
                "bu": "A",
                "bver": 10,
                "n": "voltage",
                "u": "V",
                "v": 120.1,
            },
            {"n": "current", "t": -5, "v": 1.2},
            {"n": "current", "t": -4, "v": 1.3},
            {"n": "ok", "vb": True},
            {"n": "label", "vs": "east"},
            {"n": "blob", "vd": "aGVsbG8"},
            {"bv": 10, "n": "level", "v": 2, "bs": 100, "s": 5},
        ]
    )
    assert isinstance(res, Rows), res
    rows = [dict(zip(res.table.columns, r, strict=True)) for r in res.rows]
    assert rows[0]["name"] == "urn:dev:ow:10e2073a01080063:voltage"
    assert rows[0]["unit"] == "V" and rows[0]["value"] == 120.1
    assert rows[1]["unit"] == "A"
    assert rows[1]["ts"] == datetime.fromtimestamp(bt - 5, UTC)
    assert rows[3]["value_bool"] is True and rows[4]["value_string"] == "east"
    assert rows[5]["value_data"] == "aGVsbG8"
    assert rows[6]["value"] == 12 and rows[6]["sum"] == 105


def test_senml_relative_time_is_relative_to_receipt():
    res = senml([{"n": "temp", "u": "Cel", "v": 21.5, "t": -30}])
    assert isinstance(res, Rows)
    assert res.rows[0][3] == NOW - timedelta(seconds=30)


@pytest.mark.parametrize(
    "pack",
    [
        [],
        {"n": "x", "v": 1},
        [{"n": "x"}],  # no value, no sum
        [{"n": "x", "v": 1, "vs": "a"}],  # two values
        [{"n": "", "v": 1}],  # empty name
        [{"n": "bad name", "v": 1}],
        [{"n": "x", "v": "1"}],
        [{"n": "x", "vb": 1}],
        [{"bver": 11, "n": "x", "v": 1}],
        [{"n": "x", "v": 1, "foo_": 1}],  # must-understand label
        [{"n": "x", "vd": "not base64!"}],
        [{"n": "x", "v": 1, "t": 1e300}],
    ],
)
def test_senml_invalid_packs(pack):
    res = senml(pack)
    assert isinstance(res, Reject), pack
    assert res.code in {"bad_senml", "bad_timestamp", "not_object", "out_of_range"}


@settings(max_examples=400, deadline=None)
@given(
    topic=st.sampled_from(
        [
            "maebashi/bus/v1/telemetry",
            "maebashi/bus/v1/event",
            "maebashi/5g/s/d/radio",
            "maebashi/5g/s/d/senml",
            "maebashi/other",
        ]
    ),
    payload=st.binary(max_size=300),
)
def test_fuzz_bytes_never_crash(topic, payload):
    res = parse_message(topic, payload, NOW)
    assert isinstance(res, Rows | Reject)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "ts",
        "lat",
        "lon",
        "seq",
        "mode",
        "type",
        "cause",
        "detail",
        "rsrp_dbm",
        "pci",
        "cell_id",
        "n",
        "v",
        "vs",
        "vb",
        "vd",
        "bn",
        "bt",
        "bv",
        "bs",
        "s",
        "t",
        "u",
        "bver",
        "speed_mps",
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    topic=st.sampled_from(
        [
            "maebashi/bus/v1/telemetry",
            "maebashi/bus/v1/event",
            "maebashi/5g/s/d/radio",
            "maebashi/5g/s/d/senml",
        ]
    ),
    doc=st.dictionaries(field_names, json_values, max_size=8)
    | st.lists(st.dictionaries(field_names, json_values, max_size=6), max_size=4),
)
def test_fuzz_json_structures_give_valid_rows_or_reject(topic, doc):
    payload = json.dumps(doc, allow_nan=True).encode()
    res = parse_message(topic, payload, NOW)
    assert isinstance(res, Rows | Reject)
    if isinstance(res, Rows):
        for row in res.rows:
            assert len(row) == len(res.table.columns)
            for v in row:
                assert not (isinstance(v, str) and "\x00" in v)
                assert not (isinstance(v, float) and v != v)


def test_deeply_nested_json_is_rejected_not_raised():
    deep = b'{"ts": "2026-11-26T02:00:00Z", "type": "x", "detail": ' + b'{"a":' * 5000
    deep += b"1" + b"}" * 5001
    for topic, payload in (("maebashi/bus/v/event", deep), ("maebashi/5g/s/d/senml", b"[" * 10**5)):
        res = parse_message(topic, payload, NOW)
        assert isinstance(res, Reject) and res.code == "bad_json"
