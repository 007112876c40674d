"""Read and validate a GTFS / GTFS-JP zip without touching a database.

Real feeds come with UTF-8 byte-order marks, Japanese IDs containing full-width spaces
(U+3000, which ``str.strip`` would eat, so only ASCII whitespace is trimmed), times past
24:00 and optional files absent. Anything wrong raises :class:`FeedError` naming the file,
line (1 = header) and field, so an operator can fix the feed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from core.i18n import N_, cli_gettext
from mobility.gtfs.spec import FILES, Column, FileSpec

Value = str | int | float | bool | date | None
_ASCII_WS = " \t\r\n"
_TIME = re.compile(r"^(\d{1,3}):([0-5]\d):([0-5]\d)$")


class FeedError(ValueError):
    """A feed that cannot be imported; says where.

    ``message`` is a catalogue id with ``{name}`` placeholders filled from ``params``, so
    :meth:`describe` can say it in the operator's language; ``str()`` is the English.
    """

    def __init__(
        self, file: str, line: int | None, field: str | None, message: str, **params: object
    ) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.template = message
        self.params = params
        self.message = message.format(**params)
        super().__init__(self.describe())

    def describe(self, _: Callable[[str], str] = str) -> str:
        """Where and what, with ``_`` translating the words (English without one)."""
        where = [self.file]
        if self.line is not None:
            where.append(_(N_("line {line}")).format(line=self.line))
        if self.field:
            where.append(_(N_("field {field}")).format(field=self.field))
        return f"{' '.join(where)}: {_(self.template).format(**self.params)}"


class BadValueError(ValueError):
    """A value of the wrong form; the message is a catalogue id filled from ``params``."""

    def __init__(self, message: str, **params: object) -> None:
        super().__init__(message.format(**params))
        self.template = message
        self.params = params


@dataclass
class Table:
    """Rows of one file, as tuples in ``columns`` order (table column names)."""

    spec: FileSpec
    columns: list[str]
    rows: list[tuple[Value, ...]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)

    def column(self, name: str) -> list[Value]:
        """One column's values, for cross-file reference checks."""
        i = self.columns.index(name)
        return [r[i] for r in self.rows]


@dataclass
class ParsedFeed:
    """Every file of a feed, parsed and checked, with the hash that identifies it."""

    sha256: str
    tables: dict[str, Table]

    @property
    def warnings(self) -> list[str]:
        """What the import could not keep: columns this importer does not know."""
        said = cli_gettext(
            "{file}: column {column} is not part of GTFS or GTFS-JP and was not kept"
        )
        return [
            said.format(file=name, column=repr(col))
            for name, t in self.tables.items()
            for col in t.unknown_columns
        ]

    def counts(self) -> dict[str, int]:
        """Rows per file, reported after an import."""
        return {name: len(t.rows) for name, t in self.tables.items()}


def parse_time(text: str) -> int:
    """GTFS time "H:MM:SS" (hours may exceed 24) -> seconds after noon-minus-12h."""
    m = _TIME.match(text)
    if not m:
        raise BadValueError(N_("not a GTFS time (HH:MM:SS): {value}"), value=repr(text))
    h, mi, s = (int(g) for g in m.groups())
    return h * 3600 + mi * 60 + s


def format_time(seconds: int) -> str:
    """Seconds after noon-minus-12h as GTFS "HH:MM:SS" (hours may exceed 24)."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _convert(col: Column, raw: str) -> Value:
    if col.kind == "text":
        return raw
    if col.kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise BadValueError(N_("not a whole number: {value}"), value=repr(raw)) from None
    if col.kind == "float":
        try:
            v = float(raw)
        except ValueError:
            raise BadValueError(N_("not a number: {value}"), value=repr(raw)) from None
        if v != v or v in (float("inf"), float("-inf")):
            raise BadValueError(N_("not a finite number: {value}"), value=repr(raw))
        return v
    if col.kind == "time":
        return parse_time(raw)
    if col.kind == "date":
        if len(raw) != 8 or not raw.isdigit():
            raise BadValueError(N_("not a GTFS date (YYYYMMDD): {value}"), value=repr(raw))
        try:
            return date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
        except ValueError:
            raise BadValueError(N_("no such date: {value}"), value=repr(raw)) from None
    if raw not in ("0", "1"):
        raise BadValueError(N_("must be 0 or 1, got {value}"), value=repr(raw))
    return raw == "1"


def _read_header(spec: FileSpec, reader: Iterator[list[str]]) -> list[str]:
    """The file's header, with every required column present (translations.txt accepts
    the older ``lang`` for ``language``)."""
    filename = spec.filename
    try:
        header = [h.strip(_ASCII_WS) for h in next(reader)]
    except StopIteration:
        raise FeedError(filename, 1, None, N_("empty file (no header)")) from None
    missing = [h for h in spec.required_headers if h not in header]
    if spec.filename == "translations.txt" and "language" not in header and "lang" not in header:
        missing.append("language")
    if missing:
        raise FeedError(filename, 1, missing[0], N_("required column missing"))
    return header


def _parse_row(
    filename: str, line: int, raw_row: list[str], present: list[tuple[int, Column]]
) -> dict[str, Value]:
    """One CSV row's converted values by database column; where two GTFS columns share a
    database column (an alias), the first non-empty one wins."""
    values: dict[str, Value] = {}
    for idx, col in present:
        cell = raw_row[idx].strip(_ASCII_WS) if idx < len(raw_row) else ""
        if cell == "":
            if col.required:
                raise FeedError(filename, line, col.name, N_("required value is empty"))
            values.setdefault(col.db_name, None)
            continue
        try:
            converted = _convert(col, cell)
        except BadValueError as e:
            raise FeedError(filename, line, col.name, e.template, **e.params) from None
        if values.get(col.db_name) is None:
            values[col.db_name] = converted
    return values


def parse_file(spec: FileSpec, data: bytes) -> Table:
    """Parse one feed file strictly, so a bad feed is refused with the file, line and
    column at fault instead of being half imported."""
    filename = spec.filename
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FeedError(
            filename,
            None,
            None,
            N_("not UTF-8 ({reason} at byte {byte})"),
            reason=e.reason,
            byte=e.start,
        ) from e
    reader = csv.reader(io.StringIO(text, newline=""))
    header = _read_header(spec, reader)
    present = [(header.index(c.name), c) for c in spec.columns if c.name in header]
    db_columns: list[str] = []
    for _, c in present:
        if c.db_name not in db_columns:
            db_columns.append(c.db_name)
    known = {c.name for c in spec.columns}
    unknown = [h for h in header if h and h not in known]
    table = Table(spec, db_columns, unknown_columns=unknown)
    width = len(header)
    for raw_row in reader:
        line = reader.line_num
        if not any(cell.strip(_ASCII_WS) for cell in raw_row):
            continue  # blank line
        if len(raw_row) > width:
            raise FeedError(
                filename,
                line,
                None,
                N_("{values} values for {columns} columns"),
                values=len(raw_row),
                columns=width,
            )
        values = _parse_row(filename, line, raw_row, present)
        table.rows.append(tuple(values[c] for c in db_columns))
        table.lines.append(line)
    return table


def _check_refs(
    feed: dict[str, Table], file: str, col: str, allowed: Iterable[Value], target: str
) -> None:
    t = feed.get(file)
    if t is None or col not in t.columns:
        return
    allowed_set = set(allowed)
    for value, line in zip(t.column(col), t.lines, strict=True):
        if value is not None and value not in allowed_set:
            raise FeedError(
                file, line, col, N_("{value} is not in {target}"), value=repr(value), target=target
            )


def _check_unique(t: Table, cols: tuple[str, ...]) -> None:
    if not all(c in t.columns for c in cols):
        return
    idx = [t.columns.index(c) for c in cols]
    seen: set[tuple[Value, ...]] = set()
    for row, line in zip(t.rows, t.lines, strict=True):
        key = tuple(row[i] for i in idx)
        if key in seen:
            raise FeedError(
                t.spec.filename,
                line,
                cols[-1],
                N_("duplicate {columns} {key}"),
                columns="/".join(cols),
                key=key,
            )
        seen.add(key)


def validate(feed: dict[str, Table]) -> None:
    """Uniqueness, references and time order; raises FeedError at the first problem."""
    if "calendar.txt" not in feed and "calendar_dates.txt" not in feed:
        raise FeedError(
            "calendar.txt", None, None, N_("calendar.txt or calendar_dates.txt required")
        )
    for file, key in (
        ("agency.txt", ("agency_id",)),
        ("routes.txt", ("route_id",)),
        ("stops.txt", ("stop_id",)),
        ("trips.txt", ("trip_id",)),
        ("stop_times.txt", ("trip_id", "stop_sequence")),
        ("shapes.txt", ("shape_id", "shape_pt_sequence")),
        ("calendar.txt", ("service_id",)),
        ("calendar_dates.txt", ("service_id", "date")),
        ("fare_attributes.txt", ("fare_id",)),
    ):
        if file in feed:
            _check_unique(feed[file], key)
    agencies = feed["agency.txt"].column("agency_id")
    routes = feed["routes.txt"].column("route_id")
    stops = feed["stops.txt"].column("stop_id")
    trips = feed["trips.txt"].column("trip_id")
    services: set[Value] = set()
    for f in ("calendar.txt", "calendar_dates.txt"):
        if f in feed:
            services.update(feed[f].column("service_id"))
    shapes = set(feed["shapes.txt"].column("shape_id")) if "shapes.txt" in feed else set()
    zones = set(feed["stops.txt"].column("zone_id")) - {None}
    _check_refs(feed, "routes.txt", "agency_id", agencies, "agency.txt")
    _check_refs(feed, "agency_jp.txt", "agency_id", agencies, "agency.txt")
    _check_refs(feed, "trips.txt", "route_id", routes, "routes.txt")
    _check_refs(feed, "trips.txt", "service_id", services, "calendar.txt/calendar_dates.txt")
    _check_refs(feed, "trips.txt", "shape_id", shapes, "shapes.txt")
    _check_refs(feed, "stop_times.txt", "trip_id", trips, "trips.txt")
    _check_refs(feed, "stop_times.txt", "stop_id", stops, "stops.txt")
    _check_refs(feed, "frequencies.txt", "trip_id", trips, "trips.txt")
    _check_refs(feed, "transfers.txt", "from_stop_id", stops, "stops.txt")
    _check_refs(feed, "transfers.txt", "to_stop_id", stops, "stops.txt")
    if "fare_attributes.txt" in feed:
        fares = feed["fare_attributes.txt"].column("fare_id")
        _check_refs(feed, "fare_rules.txt", "fare_id", fares, "fare_attributes.txt")
        _check_refs(feed, "fare_attributes.txt", "agency_id", agencies, "agency.txt")
    elif "fare_rules.txt" in feed and feed["fare_rules.txt"].rows:
        raise FeedError(
            "fare_rules.txt", None, None, N_("fare_rules.txt without fare_attributes.txt")
        )
    _check_refs(feed, "fare_rules.txt", "route_id", routes, "routes.txt")
    for col in ("origin_id", "destination_id", "contains_id"):
        _check_refs(feed, "fare_rules.txt", col, zones, "stops.txt zone_id")
    _check_stop_times(feed["stop_times.txt"], set(trips))


def _check_stop_times(st: Table, trips: set[Value]) -> None:
    """Times must not go backwards along a trip; every trip needs two stops."""
    ti, si = st.columns.index("trip_id"), st.columns.index("stop_sequence")
    ai = st.columns.index("arrival_s") if "arrival_s" in st.columns else None
    di = st.columns.index("departure_s") if "departure_s" in st.columns else None
    order = sorted(range(len(st.rows)), key=lambda i: (str(st.rows[i][ti]), st.rows[i][si]))
    last: dict[Value, int] = {}
    count: dict[Value, int] = {}
    for i in order:
        row, line = st.rows[i], st.lines[i]
        trip = row[ti]
        count[trip] = count.get(trip, 0) + 1
        arr = row[ai] if ai is not None else None
        dep = row[di] if di is not None else None
        if isinstance(arr, int) and isinstance(dep, int) and dep < arr:
            raise FeedError(
                "stop_times.txt", line, "departure_time", N_("departure before arrival")
            )
        for value, name in ((arr, "arrival_time"), (dep, "departure_time")):
            if isinstance(value, int):
                if value < last.get(trip, -1):
                    raise FeedError(
                        "stop_times.txt", line, name, N_("time goes back along the trip")
                    )
                last[trip] = value
    for trip in trips:
        if count.get(trip, 0) < 2:
            raise FeedError(
                "trips.txt",
                None,
                "trip_id",
                N_("trip {trip} has fewer than 2 stops"),
                trip=repr(trip),
            )


def read_feed(path: Path | str) -> ParsedFeed:
    """Parse and validate a zip (files may sit in one sub-folder, as some exports do)."""
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise FeedError(
            Path(path).name, None, None, N_("not a zip file ({error})"), error=e
        ) from None
    with zf:
        by_base = {n.rsplit("/", 1)[-1]: n for n in zf.namelist() if not n.endswith("/")}
        tables: dict[str, Table] = {}
        for spec in FILES:
            name = by_base.get(spec.filename)
            if name is None:
                if spec.required:
                    raise FeedError(spec.filename, None, None, N_("required file missing"))
                continue
            tables[spec.filename] = parse_file(spec, zf.read(name))
    validate(tables)
    return ParsedFeed(digest, tables)
