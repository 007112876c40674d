"""Prediction accuracy on real service: sample what was issued, score it on arrival.

:func:`sample` stores the engine's current predictions once per vehicle, stop and minute
(arrivals at most 30 minutes ahead; a trip's first stop is left out, its "arrival" is the
bus pulling in for the layover). :func:`score` fills in the actual arrival the tracker
detected. :func:`accuracy_report` aggregates the scored samples per MBTA bin by route and
by hour (Asia/Tokyo), with the mean and 90th-percentile absolute error per horizon; the
text is Japanese first, from the catalogue.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from core.i18n import Lang, gettext_for
from mobility.predictions.live import MODELS, ModelCache, live_predictions
from mobility.predictions.scoring import BINS, MAX_HORIZON_S

_INSERT = """
INSERT INTO mobility_prediction_samples (vehicle_id, issued_at, trip_id, service_date,
    stop_sequence, stop_id, route_id, predicted_at, horizon_s, uncertainty_s)
VALUES (%s, date_trunc('minute', %s::timestamptz), %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""

_SCORE = """
UPDATE mobility_prediction_samples s
SET actual_at = e.ts, error_s = extract(epoch FROM e.ts - s.predicted_at)
FROM vehicle_events e
WHERE s.actual_at IS NULL AND s.issued_at > %(now)s - interval '6 hours'
  AND e.type = 'arrival' AND e.vehicle_id = s.vehicle_id AND e.trip_id = s.trip_id
  AND e.service_date = s.service_date AND e.stop_sequence = s.stop_sequence
  AND e.ts >= s.issued_at AND e.ts <= s.issued_at + interval '3 hours'
"""


def sample(conn: psycopg.Connection[Any], now: datetime, models: ModelCache | None = None) -> int:
    """Store the predictions issued now (one per vehicle, stop and minute); returns how
    many were new."""
    vehicles, live = live_predictions(conn, now, models or MODELS)
    days = {v.vehicle_id: v.service_date for v in vehicles}
    epoch = now.timestamp()
    rows = []
    for vid, (trip, preds) in live.items():
        first = trip.stops[0].sequence
        for p in preds:
            horizon = p.arrival - epoch
            if p.sequence == first or horizon > MAX_HORIZON_S:
                continue
            rows.append(
                (
                    vid,
                    now,
                    p.trip_id,
                    days[vid],
                    p.sequence,
                    p.stop_id,
                    trip.route_id,
                    datetime.fromtimestamp(p.arrival, now.tzinfo),
                    horizon,
                    p.uncertainty,
                )
            )
    stored = 0
    with conn.cursor() as cur:
        for row in rows:
            stored += max(cur.execute(_INSERT, row).rowcount, 0)
    return stored


def score(conn: psycopg.Connection[Any], now: datetime) -> int:
    """Score the open samples whose bus has arrived; returns how many."""
    return max(conn.execute(_SCORE, {"now": now}).rowcount, 0)


_BIN_SQL = " ".join(
    f"WHEN s.horizon_s >= {lo} AND s.horizon_s < {hi} THEN {i}"
    for i, (_, lo, hi, _, _) in enumerate(BINS)
)
_OK_SQL = " ".join(
    f"WHEN s.horizon_s >= {lo} AND s.horizon_s < {hi} THEN s.error_s BETWEEN {early} AND {late}"
    for (_, lo, hi, early, late) in BINS
)

_AGG = f"""
SELECT {{group}} AS label, CASE {_BIN_SQL} END AS bin, count(*),
       count(*) FILTER (WHERE CASE {_OK_SQL} END),
       avg(abs(s.error_s)),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY abs(s.error_s))
FROM mobility_prediction_samples s
LEFT JOIN gtfs_routes r ON r.feed_version = gtfs_current_version() AND r.route_id = s.route_id
WHERE s.error_s IS NOT NULL AND s.issued_at >= %(start)s AND s.issued_at < %(end)s
  AND s.horizon_s >= 0 AND s.horizon_s < {MAX_HORIZON_S}
  AND (%(route)s::text IS NULL OR s.route_id = %(route)s)
GROUP BY 1, 2 ORDER BY 1, 2
"""
_ROUTE = "coalesce(nullif(r.route_long_name, ''), nullif(r.route_short_name, ''), s.route_id)"
_HOUR = "to_char(s.issued_at AT TIME ZONE 'Asia/Tokyo', 'HH24') || ':00'"


@dataclass
class Cell:
    """Aggregated scores of one bin."""

    n: int = 0
    accurate: int = 0
    mae: float | None = None
    p90: float | None = None


@dataclass
class Line:
    """One row of a report table: a route, an hour or the total, with its four bins."""

    label: str
    cells: list[Cell] = field(default_factory=lambda: [Cell() for _ in BINS])

    @property
    def n(self) -> int:
        """Scored predictions in all bins."""
        return sum(c.n for c in self.cells)

    @property
    def share(self) -> float | None:
        """Share accurate over all bins."""
        return sum(c.accurate for c in self.cells) / self.n if self.n else None


def lines_from_rows(rows: Iterable[Sequence[Any]]) -> list[Line]:
    """``_AGG`` rows (label, bin, n, accurate, mae, p90) as report lines (pure)."""
    out: dict[str, Line] = {}
    for label, b, n, ok, mae, p90 in rows:
        line = out.setdefault(str(label), Line(str(label)))
        line.cells[int(b)] = Cell(int(n), int(ok), float(mae), float(p90))
    return list(out.values())


@dataclass(frozen=True)
class Accuracy:
    """The report's data: by route, by hour and overall."""

    by_route: list[Line]
    by_hour: list[Line]
    total: list[Line]


def load_accuracy(
    conn: psycopg.Connection[Any], start: datetime, end: datetime, route: str | None = None
) -> Accuracy:
    """Aggregate the scored samples issued in [start, end)."""
    p = {"start": start, "end": end, "route": route}
    return Accuracy(
        lines_from_rows(conn.execute(_AGG.format(group=_ROUTE), p).fetchall()),
        lines_from_rows(conn.execute(_AGG.format(group=_HOUR), p).fetchall()),
        lines_from_rows(conn.execute(_AGG.format(group="'all'"), p).fetchall()),
    )


def _pct(ok: int, n: int) -> str:
    return f"{100 * ok / n:.1f}%" if n else "-"


def _share_table(title: str, lines: list[Line], first: str, _: Any) -> list[str]:
    head = [first, *[_("{bin} min").format(bin=b[0]) for b in BINS], _("Overall"), _("Predictions")]
    out = [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for line in lines:
        cells = [_pct(c.accurate, c.n) for c in line.cells]
        total = sum(c.accurate for c in line.cells)
        out.append(
            "| " + " | ".join([line.label, *cells, _pct(total, line.n), f"{line.n:,}"]) + " |"
        )
    return [*out, ""]


def accuracy_report(acc: Accuracy, lang: Lang = "ja") -> list[str]:
    """The accuracy report as Markdown lines (labels from the catalogue)."""
    _ = gettext_for(lang)
    if not acc.total:
        return [_("No scored predictions in this period.")]
    out = [
        *_share_table(_("Share accurate by route"), acc.by_route, _("Route"), _),
        *_share_table(_("Share accurate by hour"), acc.by_hour, _("Hour"), _),
    ]
    head = [_("Horizon"), _("Predictions"), _("Share accurate"), _("MAE (s)"), _("p90 (s)")]
    out += [f"## {_('Error by horizon')}", "", "| " + " | ".join(head) + " |"]
    out.append("|" + "---|" * len(head))
    for (label, *_rest), c in zip(BINS, acc.total[0].cells, strict=True):
        mae = "-" if c.mae is None else f"{c.mae:.0f}"
        p90 = "-" if c.p90 is None else f"{c.p90:.0f}"
        row = [_("{bin} min").format(bin=label), f"{c.n:,}", _pct(c.accurate, c.n), mae, p90]
        out.append("| " + " | ".join(row) + " |")
    return out
