"""Grafana's query expansion, checked against the exact strings Grafana produces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.grafana_macros import (
    MacroError,
    QueryContext,
    Variable,
    expand,
    format_interval,
    go_float,
    panel_interval,
    parse_interval,
    rfc3339_nano,
    round_interval,
)

FROM = datetime(2026, 11, 26, 0, 0, 0, tzinfo=UTC)
TO = datetime(2026, 11, 26, 6, 0, 0, 123000, tzinfo=UTC)


def ctx(**kw) -> QueryContext:
    return QueryContext(time_from=FROM, time_to=TO, interval=timedelta(seconds=20), **kw)


def test_time_filter_and_bounds() -> None:
    assert expand("WHERE $__timeFilter(ts)", ctx()) == (
        "WHERE ts BETWEEN '2026-11-26T00:00:00Z' AND '2026-11-26T06:00:00.123Z'"
    )
    assert expand("$__timeFrom() $__timeTo()", ctx()) == (
        "'2026-11-26T00:00:00Z' '2026-11-26T06:00:00.123Z'"
    )
    assert expand("$__time(ts), $__timeEpoch(ts)", ctx()) == (
        'ts AS "time", extract(epoch from ts) as "time"'
    )


def test_time_group_without_timescaledb() -> None:
    assert expand("$__timeGroup(ts, '5m')", ctx()) == "floor(extract(epoch from ts)/300)*300"
    assert expand("$__timeGroupAlias(ts,5m)", ctx()) == (
        'floor(extract(epoch from ts)/300)*300 AS "time"'
    )
    assert expand("$__timeGroup(ts,'500ms')", ctx()) == "floor(extract(epoch from ts)/0.5)*0.5"
    assert expand("$__timeGroup(ts,'14d')", ctx()) == (
        "floor(extract(epoch from ts)/1.2096e+06)*1.2096e+06"
    )


def test_time_group_with_timescaledb() -> None:
    c = ctx(timescaledb=True)
    assert expand("$__timeGroup(ts, '5m')", c) == "time_bucket('300.000s',ts)"
    assert expand("$__timeGroupAlias(ts, $__interval)", c) == (
        "time_bucket('20.000s',ts) AS \"time\""
    )
    assert expand("$__timeGroup(ts,'1h30m', previous)", c) == "time_bucket('5400.000s',ts)"


def test_time_group_followed_by_comma_gets_the_alias() -> None:
    # Grafana's pre-5.3 compatibility rule.
    assert expand("SELECT $__timeGroup(ts,'1m'), avg(v)", ctx()) == (
        'SELECT floor(extract(epoch from ts)/60)*60 AS "time", avg(v)'
    )
    assert expand("SELECT $__timeGroup(ts,'1m') , avg(v)", ctx()) == (
        "SELECT floor(extract(epoch from ts)/60)*60 , avg(v)"
    )


def test_unix_epoch_macros() -> None:
    assert expand("$__unixEpochFilter(t)", ctx()) == "t >= 1795651200 AND t <= 1795672800"
    assert expand("$__unixEpochFrom() $__unixEpochTo()", ctx()) == "1795651200 1795672800"
    assert expand("$__unixEpochNanoFrom()", ctx()) == "1795651200000000000"
    assert expand("$__unixEpochNanoTo()", ctx()) == "1795672800123000000"
    assert expand("$__unixEpochGroupAlias(t,'1m')", ctx()) == 'floor((t)/60)*60 AS "time"'


def test_interval_substitutions() -> None:
    c = ctx()
    assert expand("$__interval $__interval_ms ${__interval}", c) == "20s 20000 20s"
    assert expand("$__from $__to", c) == "1795651200000 1795672800123"


def test_variables_multi_all_and_formats() -> None:
    variables = {
        "vehicle": Variable(["bus-01", "o'clock"], multi=True, include_all=True),
        "site": Variable(["akagi"], multi=False, include_all=False),
        "line": Variable(["x"], include_all=True, all_selected=True, all_value="%"),
    }
    c = ctx(variables=variables)
    assert expand("vehicle_id IN ($vehicle)", c) == "vehicle_id IN ('bus-01','o''clock')"
    assert expand("site_id = '$site'", c) == "site_id = 'akagi'"
    assert expand("${vehicle:csv} [[site]] ${vehicle:sqlstring}", c) == (
        "bus-01,o'clock akagi 'bus-01','o''clock'"
    )
    assert expand("route LIKE '$line'", c) == "route LIKE '%'"
    assert expand("$unknown_var", c) == "$unknown_var"


def test_errors_match_grafana() -> None:
    with pytest.raises(MacroError, match="unknown macro"):
        expand("$__nope(ts)", ctx())
    with pytest.raises(MacroError, match="missing time column"):
        expand("$__timeFilter()", ctx())
    with pytest.raises(MacroError, match="interval"):
        expand("$__timeGroup(ts)", ctx())
    with pytest.raises(MacroError, match="error parsing interval"):
        expand("$__timeGroup(ts, 'soon')", ctx())


def test_helpers() -> None:
    assert [go_float(x) for x in (300.0, 0.5, 1e6, 86400.0, 0.0001, 0.00001)] == [
        "300",
        "0.5",
        "1e+06",
        "86400",
        "0.0001",
        "1e-05",
    ]
    assert parse_interval("1w") == 604800
    assert parse_interval("1h30m") == 5400
    assert [format_interval(timedelta(seconds=s)) for s in (0.2, 20, 90, 3600, 86400 * 8)] == [
        "200ms",
        "20s",
        "1m",
        "1h",
        "8d",
    ]
    assert rfc3339_nano(datetime(2026, 1, 2, 3, 4, 5, 500, tzinfo=UTC)) == (
        "2026-01-02T03:04:05.0005Z"
    )
    assert round_interval(21600) == 20000
    six_hours = panel_interval(FROM, FROM + timedelta(hours=6), 1000, timedelta(0))
    assert six_hours == timedelta(seconds=20)
    assert panel_interval(FROM, FROM + timedelta(hours=6), 1000, timedelta(minutes=1)) == (
        timedelta(minutes=1)
    )
