"""What the parsers accept (issue 10): storable strings, bounded numbers and nesting, and
times inside retention and a small future skew. Pure tests, plus one against a real
database proving that whatever the parser accepts, PostgreSQL stores."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.fields import Limits, text_problem
from ingest.parse import parse_message
from ingest.rows import Reject, Rows
from ingest.writer import Item, prepare, write_batch
from tests.conftest import make_settings

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
TS = "2026-11-26T02:59:00Z"
TELEMETRY = "maebashi/bus/av-01/telemetry"
EVENT = "maebashi/bus/av-01/event"
RADIO = "maebashi/5g/s1/phone-1/radio"
SENML = "maebashi/5g/s1/wx-1/senml"

DOCS: dict[str, Any] = {
    TELEMETRY: {
        "ts": TS,
        "lat": 36.38,
        "lon": 139.07,
        "mode": "manual",
        "trip_id": "t1",
        "route_id": "r1",
    },
    EVENT: {
        "ts": TS,
        "type": "takeover",
        "cause": "other",
        "detail": {"note": "路上駐車", "nested": {"list": ["a", {"deep": "b"}]}},
    },
    RADIO: {"ts": TS, "rsrp_dbm": -90, "band": "n79", "cell_id": "44012001"},
    SENML: [
        {"bn": "urn:dev:wx:", "bt": NOW.timestamp() - 60, "bu": "Cel", "n": "temp", "v": 9.8},
        {"n": "label", "u": "txt", "vs": "east"},
        {"n": "blob", "vd": "aGVsbG8"},
    ],
}
# (topic, path to a string in DOCS[topic], the field name the reason must carry)
STRING_FIELDS = [
    (TELEMETRY, ("mode",), "mode"),
    (TELEMETRY, ("trip_id",), "trip_id"),
    (TELEMETRY, ("route_id",), "route_id"),
    (EVENT, ("type",), "type"),
    (EVENT, ("cause",), "cause"),
    (EVENT, ("detail", "note"), "detail.note"),
    (EVENT, ("detail", "nested", "list", 1, "deep"), "detail.nested.list[1].deep"),
    (RADIO, ("band",), "band"),
    (RADIO, ("cell_id",), "cell_id"),
    (SENML, (0, "bn"), "senml[0].bn"),
    (SENML, (0, "bu"), "senml[0].bu"),
    (SENML, (0, "n"), "senml[0].n"),
    (SENML, (1, "u"), "senml[1].u"),
    (SENML, (1, "vs"), "senml[1].vs"),
    (SENML, (2, "vd"), "senml[2].vd"),
]
BAD_STRINGS = {"lone high surrogate": "a\ud800b", "lone low surrogate": "\udc00", "NUL": "a\x00b"}


def payload(doc: Any) -> bytes:
    # ensure_ascii (the default) escapes surrogates and NUL as \uXXXX, exactly what a
    # device would put on the wire: raw UTF-8 cannot carry a lone surrogate.
    return json.dumps(doc).encode()


def with_value(topic: str, path: tuple[Any, ...], value: Any) -> bytes:
    doc = copy.deepcopy(DOCS[topic])
    target = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return payload(doc)


@pytest.mark.parametrize("topic", list(DOCS))
def test_base_documents_are_valid(topic: str) -> None:
    assert isinstance(parse_message(topic, payload(DOCS[topic]), NOW), Rows)


@pytest.mark.parametrize(("topic", "path", "field"), STRING_FIELDS)
@pytest.mark.parametrize("bad", list(BAD_STRINGS))
def test_unstorable_strings_are_rejected_naming_the_field(
    topic: str, path: tuple[Any, ...], field: str, bad: str
) -> None:
    res = parse_message(topic, with_value(topic, path, BAD_STRINGS[bad]), NOW)
    assert isinstance(res, Reject), res
    assert res.code == "bad_text"
    assert res.detail.startswith(f"{field}: "), res.detail
    assert text_problem(res.reason) is None  # the reason itself is storable


@pytest.mark.parametrize("topic", [TELEMETRY, EVENT, RADIO])
def test_unstorable_keys_and_ignored_fields_are_rejected_too(topic: str) -> None:
    for doc in ({**DOCS[topic], "x\ud800": 1}, {**DOCS[topic], "extra": "\x00"}):
        res = parse_message(topic, payload(doc), NOW)
        assert isinstance(res, Reject) and res.code == "bad_text", res
        assert text_problem(res.reason) is None
    nested_key = {**DOCS[EVENT], "detail": {"ok": {"k\x00": 1}}}
    res = parse_message(EVENT, payload(nested_key), NOW)
    assert isinstance(res, Reject) and res.detail.startswith('detail.ok."k\\u0000" (key)')


def test_surrogate_pairs_and_non_ascii_text_are_fine() -> None:
    doc = {**DOCS[TELEMETRY], "trip_id": "平日_06時45分_系統1072\U0001f68c"}
    for raw in (payload(doc), json.dumps(doc, ensure_ascii=False).encode()):
        res = parse_message(TELEMETRY, raw, NOW)
        assert isinstance(res, Rows), res
        assert res.rows[0][11] == "平日_06時45分_系統1072\U0001f68c"


@pytest.mark.parametrize(
    ("topic", "raw", "code", "names"),
    [
        (TELEMETRY, b'{"ts": "%s", "lat": 1e400, "lon": 1}', "out_of_range", "lat"),
        (TELEMETRY, b'{"ts": "%s", "lat": -1e400, "lon": 1}', "out_of_range", "lat"),
        (TELEMETRY, b'{"ts": "%s", "lat": NaN, "lon": 1}', "bad_json", "NaN"),
        (TELEMETRY, b'{"ts": "%s", "lat": 1, "lon": Infinity}', "bad_json", "Infinity"),
        (TELEMETRY, b'{"ts": "%s", "lat": 1, "lon": 1, "seq": 9223372036854775808}', "", "seq"),
        (TELEMETRY, b'{"ts": "%s", "lat": 1, "lon": 1, "seq": -1}', "out_of_range", "seq"),
        (TELEMETRY, b'{"ts": "%s", "lat": 1, "lon": 1, "passengers": 1e300}', "", "passengers"),
        (TELEMETRY, b'{"ts": "%s", "lat": 1, "lon": 1, "passengers": 32768}', "", "passengers"),
        (TELEMETRY, b'{"ts": "%s", "lat": 1, "lon": 1, "odometer_m": 1e400}', "", "odometer_m"),
        (TELEMETRY, b'{"ts": 1e400, "lat": 1, "lon": 1}', "bad_timestamp", "ts"),
        (TELEMETRY, b'{"ts": 1' + b"0" * 400 + b', "lat": 1, "lon": 1}', "", "ts"),
        (EVENT, b'{"ts": "%s", "type": "x", "detail": {"v": 1e400}}', "", "detail.v"),
        (EVENT, b'{"ts": "%s", "type": "x", "detail": {"v": [-1e999]}}', "", "detail.v[0]"),
        (RADIO, b'{"ts": "%s", "rsrp_dbm": -1e400}', "out_of_range", "rsrp_dbm"),
        (RADIO, b'{"ts": "%s", "rsrp_dbm": -90, "pci": 1e300}', "out_of_range", "pci"),
        (RADIO, b'{"ts": "%s", "rsrp_dbm": -90, "cell_id": 1' + b"0" * 60 + b"}", "", "cell_id"),
        (SENML, b'[{"n": "x", "v": 1e400}]', "bad_senml", "senml[0].v"),
        (SENML, b'[{"n": "x", "v": 1, "t": 1e400}]', "bad_senml", "senml[0].t"),
        (SENML, b'[{"n": "x", "v": 1, "bt": 1' + b"0" * 400 + b"}]", "bad_senml", "senml[0].bt"),
        (SENML, b'[{"n": "x", "bv": 1e308, "v": 1e308}]', "bad_senml", "value"),
        (SENML, b'[{"n": "x", "v": 1, "t": 1e300}]', "bad_timestamp", "senml[0].t"),
    ],
)
def test_huge_and_non_finite_numbers_are_clean_rejects(
    topic: str, raw: bytes, code: str, names: str
) -> None:
    if b"%s" in raw:
        raw = raw % TS.encode()
    res = parse_message(topic, raw, NOW)
    assert isinstance(res, Reject), res
    if code:
        assert res.code == code, res
    assert names in res.detail, res.detail


def test_numbers_below_a_real_columns_precision_are_stored_as_zero() -> None:
    doc = {**DOCS[TELEMETRY], "speed_mps": 1e-50, "lat": 1e-300}
    res = parse_message(TELEMETRY, payload(doc), NOW)
    assert isinstance(res, Rows)
    row = dict(zip(res.table.columns, res.rows[0], strict=True))
    assert row["speed_mps"] == 0.0  # a `real` column refuses 1e-50 ("out of range")
    assert row["lat"] == 1e-300  # double precision holds it


def test_deep_nesting_is_a_clean_reject() -> None:
    deep: dict[str, object] = {"a": 1}
    for _ in range(40):
        deep = {"a": deep}
    res = parse_message(EVENT, payload({**DOCS[EVENT], "detail": deep}), NOW)
    assert isinstance(res, Reject) and res.code == "bad_json", res
    assert "nested deeper than 32" in res.detail
    shallow = {"a": {"b": {"c": [1, 2, {"d": None}]}}}
    assert isinstance(parse_message(EVENT, payload({**DOCS[EVENT], "detail": shallow}), NOW), Rows)
    for topic, raw in (
        (TELEMETRY, b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        (SENML, b"[" * 100_000),
        (EVENT, b'{"detail": "\\u0000", "x": ' + b"[" * 900 + b"]" * 900 + b"}"),
    ):
        res = parse_message(topic, raw, NOW)
        assert isinstance(res, Reject), res


# -- time sanity -------------------------------------------------------------------------


# What `mebuku ingest` runs with by default (Limits.from_settings of default settings).
CONFIGURED = Limits(retention_days=400, max_future_skew_seconds=300, max_payload_bytes=262144)


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


@pytest.mark.parametrize("topic", [TELEMETRY, EVENT, RADIO])
def test_ts_must_lie_within_retention_and_the_future_skew(topic: str) -> None:
    def parse(ts: Any, limits: Limits = CONFIGURED) -> Any:
        return parse_message(topic, payload({**DOCS[topic], "ts": ts}), NOW, limits=limits)

    assert isinstance(parse((NOW + timedelta(seconds=299)).isoformat()), Rows)
    assert isinstance(parse(ms(NOW - timedelta(days=399))), Rows)
    future = parse((NOW + timedelta(seconds=301)).isoformat())
    assert isinstance(future, Reject) and future.code == "bad_timestamp"
    assert future.detail == "ts: 2026-11-26T03:05:01+00:00 is more than 300 s in the future"
    old = parse(ms(NOW - timedelta(days=401)))
    assert isinstance(old, Reject) and old.code == "bad_timestamp"
    assert old.detail.startswith("ts: 2025-10-21") and "400-day retention" in old.detail
    # settings: a longer skew, retention 0 (= forever, but nothing before 2000)
    assert isinstance(
        parse(ms(NOW + timedelta(hours=1)), Limits(max_future_skew_seconds=7200)), Rows
    )
    assert isinstance(parse(ms(NOW - timedelta(days=4000)), Limits(retention_days=0)), Rows)
    y1999 = parse("1999-12-31T23:59:59Z", Limits(retention_days=0))
    assert isinstance(y1999, Reject) and "before 2000-01-01" in y1999.detail
    assert isinstance(parse(ms(NOW - timedelta(days=30)), Limits(retention_days=7)), Reject)
    for far in ("9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+09:00", 2**62, -(2**62)):
        assert isinstance(parse(far), Reject), far


def senml_at(*records: dict[str, Any], limits: Limits = CONFIGURED) -> Any:
    return parse_message(SENML, payload(list(records)), NOW, limits=limits)


def test_senml_absolute_times_outside_the_window_are_rejected() -> None:
    res = senml_at({"n": "x", "v": 1, "t": 1e11})
    assert isinstance(res, Reject) and res.code == "bad_timestamp"
    assert res.detail == "senml[0].t: 5138-11-16T09:46:40+00:00 is more than 300 s in the future"
    res = senml_at({"n": "x", "v": 1, "t": NOW.timestamp() - 401 * 86400})
    assert isinstance(res, Reject) and "senml[0].t" in res.detail and "retention" in res.detail


def test_senml_relative_times_are_resolved_then_checked() -> None:
    # t = -6e10 is below 2**28, so relative to receipt: about 1900 years ago.
    res = senml_at({"n": "x", "v": 1, "t": -6e10})
    assert isinstance(res, Reject) and res.code == "bad_timestamp"
    assert res.detail.startswith("senml[0].t: 0125-") and "retention" in res.detail
    res = senml_at({"n": "x", "v": 1, "t": 301})
    assert isinstance(res, Reject) and "more than 300 s in the future" in res.detail
    ok = senml_at({"n": "x", "v": 1, "t": -3600}, {"n": "y", "v": 2, "t": 299})
    assert isinstance(ok, Rows)
    assert [r[3] for r in ok.rows] == [NOW - timedelta(hours=1), NOW + timedelta(seconds=299)]


def test_senml_base_time_plus_time_names_the_record() -> None:
    bt = NOW.timestamp()
    res = senml_at(
        {"bn": "urn:dev:wx:", "bt": bt, "n": "a", "v": 1},
        {"n": "b", "v": 1, "t": -10},
        {"n": "c", "v": 1, "t": -20},
        {"n": "d", "v": 1, "t": 1000},
    )
    assert isinstance(res, Reject)
    assert res.detail.startswith("senml[3].t: 2026-11-26T03:16:40+00:00 is more than 300 s")
    res = senml_at({"n": "a", "v": 1}, {"bt": 1e11, "n": "b", "v": 1})
    assert isinstance(res, Reject) and res.detail.startswith("senml[1].bt: 5138-")
    res = senml_at({"bt": -6e10, "n": "a", "v": 1}, limits=Limits(retention_days=0))
    assert isinstance(res, Reject) and "before 2000-01-01" in res.detail


def test_limits_come_from_settings() -> None:
    s = make_settings(
        None,
        retention_days=90,
        ingest_max_future_skew_seconds=60,
        ingest_max_payload_bytes=4096,
    )
    limits = Limits.from_settings(s)
    assert limits == Limits(retention_days=90, max_future_skew_seconds=60, max_payload_bytes=4096)
    big = payload({**DOCS[TELEMETRY], "pad": "x" * 5000})
    res = parse_message(TELEMETRY, big, NOW, limits=limits)
    assert isinstance(res, Reject) and res.code == "too_large"
    assert Limits.from_settings(make_settings(None)) == CONFIGURED


def test_bare_limits_bound_the_past_at_2000_only() -> None:
    """parse_message without limits (tests replaying a feed's service day, seeds): no
    retention bound, but the floor and the future skew hold."""
    old = {**DOCS[TELEMETRY], "ts": "2001-06-03T08:00:00+09:00"}
    assert isinstance(parse_message(TELEMETRY, payload(old), NOW), Rows)
    y1999 = parse_message(TELEMETRY, payload({**old, "ts": "1999-12-31T23:59:59Z"}), NOW)
    assert isinstance(y1999, Reject) and "before 2000-01-01" in y1999.detail
    assert isinstance(senml_at({"n": "x", "v": 1, "t": 1e11}, limits=Limits()), Reject)


# -- property: whatever the parser accepts is storable ------------------------------------

# Code points including lone surrogates and NUL, which st.text() never generates.
hostile_text = st.lists(
    st.one_of(st.integers(0, 0x7F), st.integers(0xD800, 0xDFFF), st.integers(0x80, 0x10FFFF)).map(
        chr
    ),
    max_size=6,
).map("".join)
hostile_number = st.one_of(
    st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.sampled_from([1e-50, 1e308])
)
hostile_value = st.recursive(
    st.none() | st.booleans() | hostile_number | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=8,
)


def _with(topic: str, key: str, value: Any) -> bytes:
    if topic == SENML:
        return payload([{**DOCS[SENML][0], key: value}])
    return payload({**DOCS[topic], key: value})


def _keys(topic: str) -> list[str]:
    base = DOCS[SENML][0] if topic == SENML else DOCS[topic]
    return sorted(set(base) | {"t", "seq", "speed_mps", "pci", "detail"})


CASES = st.one_of(
    *(
        st.tuples(
            st.just(t), st.builds(partial(_with, t), st.sampled_from(_keys(t)), hostile_value)
        )
        for t in DOCS
    )
)


@settings(max_examples=300, deadline=None)
@given(case=CASES)
def test_accepted_rows_hold_only_storable_values(case: tuple[str, bytes]) -> None:
    topic, raw = case
    res = parse_message(topic, raw, NOW)
    if isinstance(res, Reject):
        assert text_problem(res.reason) is None
        return
    for row in res.rows:
        for v in row:
            assert not (isinstance(v, str) and text_problem(v) is not None), row
            assert not (isinstance(v, float) and v != v), row


def test_what_the_parser_accepts_the_database_stores(db_url: str) -> None:
    """Edge values the parser lets through go into the real tables (no db_refused)."""
    accepted = [
        (TELEMETRY, {**DOCS[TELEMETRY], "speed_mps": 1e-50, "soc_pct": 1e-45, "seq": 2**63 - 1}),
        (
            TELEMETRY,
            {
                **DOCS[TELEMETRY],
                "ts": ms(NOW) + 1,
                "trip_id": "\U0001f68c平日" * 20,
                "heading_deg": 359.99999,
            },
        ),
        (EVENT, {**DOCS[EVENT], "detail": {"big": 10**300, "f": 1.7e308, "tiny": 5e-324}}),
        (EVENT, {**DOCS[EVENT], "ts": TS.replace("59:00", "58:00"), "detail": {"\U0001f68c": []}}),
        (RADIO, {**DOCS[RADIO], "cell_id": 10**39, "pci": 1007, "rsrq_db": -1e-40}),
        (SENML, [{"n": "x", "v": 1e308, "t": -1}, {"n": "y", "vs": "\U0001f68c" * 200, "t": -2}]),
    ]
    items = []
    for i, (topic, doc) in enumerate(accepted):
        res = parse_message(topic, payload(doc), NOW)
        assert isinstance(res, Rows), (i, res)
        items.append(Item(topic, payload(doc), res))
    with psycopg.connect(db_url) as conn:
        prepare(conn)
        result = write_batch(conn, items)
    assert not result.rejects, result
    assert sum(result.inserted.values()) == 7


def _real(lo: float, hi: float, **kw: Any) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, **kw) | st.sampled_from([lo, hi, 1e-50, 1e-40])


TELEMETRY_DOCS = st.fixed_dictionaries(
    {
        "ts": st.integers(ms(NOW - timedelta(days=401)), ms(NOW + timedelta(seconds=400))),
        "lat": st.floats(-90, 90),
        "lon": st.floats(-180, 180),
    },
    optional={
        "speed_mps": _real(0, 100),
        "heading_deg": _real(0, 360, exclude_max=True) | st.just(359.99999),
        "soc_pct": _real(0, 100),
        "odometer_m": st.floats(0, 1e10),
        "seq": st.integers(-1, 2**63),
        "passengers": st.integers(-1, 1001),
        "trip_id": hostile_text,
    },
)
RADIO_DOCS = st.fixed_dictionaries(
    {"ts": st.integers(ms(NOW - timedelta(days=30)), ms(NOW))},
    optional={
        "rsrp_dbm": _real(-156, -31),
        "rsrq_db": _real(-43, 20),
        "sinr_db": _real(-23, 40),
        "loss_pct": _real(0, 100),
        "pci": st.integers(0, 1007),
        "cell_id": st.integers(-(10**41), 10**41) | hostile_text,
        "band": hostile_text,
    },
)
EVENT_DOCS = st.fixed_dictionaries(
    {"ts": st.just(TS), "type": st.sampled_from(["takeover", "door"])},
    optional={"detail": st.dictionaries(hostile_text, hostile_value, max_size=4)},
)
SENML_DOCS = st.lists(
    st.fixed_dictionaries(
        {"n": st.sampled_from(["temp", "rh", "wind"]), "t": st.floats(-1e4, 1e4)},
        optional={"u": hostile_text, "bt": st.floats(-1e11, 1e11)},
    ).flatmap(
        lambda r: st.one_of(
            st.builds(lambda v: {**r, "v": v}, st.floats(allow_nan=False)),
            st.builds(lambda v: {**r, "vs": v}, hostile_text),
        )
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(
    case=st.one_of(
        st.tuples(st.just(TELEMETRY), TELEMETRY_DOCS),
        st.tuples(st.just(RADIO), RADIO_DOCS),
        st.tuples(st.just(EVENT), EVENT_DOCS),
        st.tuples(st.just(SENML), SENML_DOCS),
    )
)
def test_property_accepted_rows_are_stored_never_refused(
    db_url: str, case: tuple[str, Any]
) -> None:
    """Generated documents near every column's limits: what the parser accepts, the real
    database stores (no db_refused), and every reject reason is storable."""
    topic, doc = case
    raw = json.dumps(doc).encode()
    res = parse_message(topic, raw, NOW, limits=CONFIGURED)
    if isinstance(res, Reject):
        assert text_problem(res.reason) is None
        return
    with psycopg.connect(db_url) as conn:
        prepare(conn)
        result = write_batch(conn, [Item(topic, raw, res)])
    assert not result.rejects, (doc, result)
