"""Grafana's SQL query expansion for the PostgreSQL data source, reproduced exactly.

Grafana expands a panel's SQL in three steps, and so do we:

1. the frontend replaces template variables (``$vehicle``, ``${vehicle:csv}``,
   ``[[vehicle]]``) and the scoped ``$__interval`` / ``$__interval_ms`` / ``$__from`` /
   ``$__to``; multi-value and All variables become quoted lists (``'a','b'``);
2. the backend (``sqleng.Interpolate``) replaces ``$__interval_ms``, ``$__interval``,
   ``$__unixEpochFrom()`` and ``$__unixEpochTo()``;
3. the macro engine (``grafana-postgresql-datasource/macros.go``) replaces every
   ``$name(args)``: ``$__timeFilter``, ``$__timeGroup`` (``time_bucket`` with the
   TimescaleDB option, ``floor(extract(epoch ...))`` without), and the rest.

Pure functions only, so the panel test and unit tests can check exact output.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal


class MacroError(ValueError):
    """The query would fail in Grafana too (unknown macro, bad interval, missing argument)."""


@dataclass(frozen=True)
class Variable:
    """A template variable's current selection.

    ``values`` are the selected values; for "All" pass every option's value (and
    ``all_value`` when the variable defines a custom one, which is then used verbatim).
    """

    values: Sequence[str]
    multi: bool = False
    include_all: bool = False
    all_selected: bool = False
    all_value: str | None = None


@dataclass(frozen=True)
class QueryContext:
    time_from: datetime
    time_to: datetime
    interval: timedelta
    timescaledb: bool = False
    variables: Mapping[str, Variable] = field(default_factory=dict)


# Step 1: template variables (Grafana's templateSrv regex).
_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}"
)


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _format_variable(var: Variable, fmt: str | None) -> str:
    if var.all_selected and var.all_value is not None:
        return var.all_value
    values = list(var.values)
    if fmt is None:  # the PostgreSQL data source's interpolateVariable
        if var.multi or var.include_all:
            return ",".join(quote_literal(v) for v in values)
        return values[0].replace("'", "''") if values else ""
    if fmt in ("csv", "raw", "text"):
        return ",".join(values)
    if fmt == "sqlstring":
        return ",".join(quote_literal(v) for v in values)
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
    if fmt == "pipe":
        return "|".join(values)
    raise MacroError(f"unsupported variable format {fmt!r}")


def format_interval(d: timedelta) -> str:
    """Grafana's gtime.FormatInterval: the largest whole unit (1h, 5m, 20s, 200ms)."""
    ms = int(d / timedelta(milliseconds=1))
    for unit, size in (("y", 31_536_000_000), ("d", 86_400_000), ("h", 3_600_000)):
        if ms >= size:
            return f"{ms // size}{unit}"
    if ms >= 60_000:
        return f"{ms // 60_000}m"
    if ms >= 1000:
        return f"{ms // 1000}s"
    if ms >= 1:
        return f"{ms}ms"
    return "1ms"


def _epoch_ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def interpolate_variables(sql: str, ctx: QueryContext) -> str:
    scoped = {
        "__interval": format_interval(ctx.interval),
        "__interval_ms": str(int(ctx.interval / timedelta(milliseconds=1))),
        "__from": str(_epoch_ms(ctx.time_from)),
        "__to": str(_epoch_ms(ctx.time_to)),
    }

    def replace(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        if name in scoped:
            return scoped[name]
        var = ctx.variables.get(name)
        if var is None:
            return m.group(0)  # not a variable: left for the backend (macros)
        return _format_variable(var, fmt)

    return _VARIABLE.sub(replace, sql)


# Step 2: sqleng.Interpolate.
def backend_interpolate(sql: str, ctx: QueryContext) -> str:
    sql = sql.replace("$__interval_ms", str(int(ctx.interval / timedelta(milliseconds=1))))
    sql = sql.replace("$__interval", format_interval(ctx.interval))
    sql = sql.replace("$__unixEpochFrom()", str(_unix(ctx.time_from)))
    sql = sql.replace("$__unixEpochTo()", str(_unix(ctx.time_to)))
    return sql


# Step 3: the macro engine.
_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")
_GO_DURATION = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_interval(text: str) -> float:
    """Seconds, as gtime.ParseInterval reads them ('5m', '1d', '1w', '1h30m', '500ms')."""
    m = re.fullmatch(r"(\d+)([dwMy])", text)
    if m:
        n, unit = int(m.group(1)), m.group(2)
        if unit in "My":
            raise MacroError(f"calendar interval {text!r} depends on the current date")
        return n * (86_400.0 if unit == "d" else 604_800.0)
    rest = text.lstrip("+-")
    if not rest or rest == "0":
        if rest == "0":
            return 0.0
        raise MacroError(f"error parsing interval {text}")
    total = 0.0
    pos = 0
    while pos < len(rest):
        d = _GO_DURATION.match(rest, pos)
        if d is None or d.group(1) in ("", "."):
            raise MacroError(f"error parsing interval {text}")
        total += float(d.group(1)) * _GO_UNITS[d.group(2)]
        pos = d.end()
    return -total if text.startswith("-") else total


def go_float(x: float) -> str:
    """Go's ``%v`` for a float64: shortest digits, exponent form outside 1e-4 <= |x| < 1e6."""
    if x == 0:
        return "0"
    if math.isinf(x) or math.isnan(x):
        return {math.inf: "+Inf", -math.inf: "-Inf"}.get(x, "NaN")
    sign, digits, exponent = Decimal(repr(x)).normalize().as_tuple()
    assert isinstance(exponent, int)
    ds = "".join(map(str, digits))
    exp = len(ds) + exponent - 1
    neg = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{neg}{mant}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    return neg + format(Decimal(repr(abs(x))).normalize(), "f")


def rfc3339_nano(t: datetime) -> str:
    """Go's time.RFC3339Nano in UTC: trailing zeros of the fraction dropped."""
    u = t.astimezone(UTC)
    base = u.strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{u.microsecond:06d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def _unix(t: datetime) -> int:
    return math.floor(t.timestamp())


def _column_macro(name: str, args: list[str], ctx: QueryContext) -> str:
    """The macros whose one argument is the time column."""
    if not args or args == [""]:
        raise MacroError(f"missing time column argument for macro {name}")
    col = args[0]
    if name == "__time":
        return f'{col} AS "time"'
    if name == "__timeEpoch":
        return f'extract(epoch from {col}) as "time"'
    if name == "__timeFilter":
        return f"{col} BETWEEN '{rfc3339_nano(ctx.time_from)}' AND '{rfc3339_nano(ctx.time_to)}'"
    if name == "__unixEpochFilter":
        return f"{col} >= {_unix(ctx.time_from)} AND {col} <= {_unix(ctx.time_to)}"
    return f"{col} >= {_unix_nano(ctx.time_from)} AND {col} <= {_unix_nano(ctx.time_to)}"


_COLUMN_MACROS = frozenset(
    {"__time", "__timeEpoch", "__timeFilter", "__unixEpochFilter", "__unixEpochNanoFilter"}
)


def _group_macro(name: str, args: list[str], ctx: QueryContext) -> str:
    """``$__timeGroup`` and ``$__unixEpochGroup``: buckets of the interval argument."""
    if len(args) < 2:
        raise MacroError(f"macro {name} needs time column and interval and optional fill value")
    seconds = parse_interval(args[1].strip("'"))
    if name == "__unixEpochGroup":
        return f"floor(({args[0]})/{go_float(seconds)})*{go_float(seconds)}"
    if ctx.timescaledb:
        return f"time_bucket('{seconds:.3f}s',{args[0]})"
    return f"floor(extract(epoch from {args[0]})/{go_float(seconds)})*{go_float(seconds)}"


def _evaluate(name: str, args: list[str], ctx: QueryContext) -> str:
    if name in _COLUMN_MACROS:
        return _column_macro(name, args, ctx)
    if name == "__timeFrom":
        return f"'{rfc3339_nano(ctx.time_from)}'"
    if name == "__timeTo":
        return f"'{rfc3339_nano(ctx.time_to)}'"
    if name in ("__timeGroup", "__unixEpochGroup"):
        return _group_macro(name, args, ctx)
    if name in ("__timeGroupAlias", "__unixEpochGroupAlias"):
        return _evaluate(name.removesuffix("Alias"), args, ctx) + ' AS "time"'
    if name == "__unixEpochNanoFrom":
        return str(_unix_nano(ctx.time_from))
    if name == "__unixEpochNanoTo":
        return str(_unix_nano(ctx.time_to))
    raise MacroError(f"unknown macro {name!r}")


def _unix_nano(t: datetime) -> int:
    delta = t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def expand_macros(sql: str, ctx: QueryContext) -> str:
    original = sql

    def replace(m: re.Match[str]) -> str:
        name = m.group(1)
        # Pre-5.3 compatibility in Grafana: "$__timeGroup(...)," (a comma right after the
        # first occurrence of this exact call) means the alias form.
        if name == "__timeGroup":
            index = original.find(m.group(0))
            if index >= 0:
                index += len(m.group(0))
                if len(original) > index and original[index] == ",":
                    name = "__timeGroupAlias"
        args = [a.strip(" ") for a in m.group(2).split(",")]
        return _evaluate(name, args, ctx)

    return _MACRO.sub(replace, sql)


def expand(sql: str, ctx: QueryContext) -> str:
    """The SQL Grafana sends to PostgreSQL for this panel query."""
    return expand_macros(backend_interpolate(interpolate_variables(sql, ctx), ctx), ctx)


def round_interval(ms: float) -> int:
    """Grafana's rangeutil.roundInterval (milliseconds), used for ``$__interval``."""
    steps = (
        (15, 10),
        (35, 20),
        (75, 50),
        (150, 100),
        (350, 200),
        (750, 500),
        (1500, 1000),
        (3500, 2000),
        (7500, 5000),
        (12500, 10000),
        (17500, 15000),
        (25000, 20000),
        (45000, 30000),
        (90000, 60000),
        (210000, 120000),
        (450000, 300000),
        (750000, 600000),
        (1050000, 900000),
        (1500000, 1200000),
        (2700000, 1800000),
        (5400000, 3600000),
        (9000000, 7200000),
        (16200000, 10800000),
        (32400000, 21600000),
        (86400000, 43200000),
        (604800000, 86400000),
        (1814400000, 604800000),
        (3628800000, 2592000000),
    )
    for limit, value in steps:
        if ms < limit:
            return value
    return 31536000000


def panel_interval(
    time_from: datetime, time_to: datetime, max_data_points: int, min_interval: timedelta
) -> timedelta:
    """``$__interval`` for a panel: range / max data points, rounded, at least the minimum."""
    raw_ms = (time_to - time_from) / timedelta(milliseconds=1) / max(max_data_points, 1)
    ms = max(round_interval(raw_ms), int(min_interval / timedelta(milliseconds=1)))
    return timedelta(milliseconds=ms)
