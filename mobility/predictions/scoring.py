"""Prediction accuracy the way the MBTA publishes it (pure).

A prediction made ``horizon`` seconds ahead is accurate when the bus arrives within the
bin's window around it: 0-3 min ahead: 1 min early to 1 min late; 3-6 min: 1.5 early to
2 late; 6-12 min: 2.5 early to 3.5 late; 12-30 min: 4 early to 6 late. ``error`` is
actual - predicted, so early (the bus came before the predicted time) is negative.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from mobility.predictions.model import percentile

# (label, horizon from, horizon to, earliest error, latest error) in seconds
BINS: tuple[tuple[str, int, int, int, int], ...] = (
    ("0-3", 0, 180, -60, 60),
    ("3-6", 180, 360, -90, 120),
    ("6-12", 360, 720, -150, 210),
    ("12-30", 720, 1800, -240, 360),
)
MAX_HORIZON_S = 1800


def bin_index(horizon_s: float) -> int | None:
    """Index into BINS for a prediction ``horizon_s`` ahead (None beyond 30 minutes)."""
    if horizon_s < 0:
        return 0 if horizon_s > -30 else None
    for i, (_, lo, hi, _, _) in enumerate(BINS):
        if lo <= horizon_s < hi:
            return i
    return None


def is_accurate(horizon_s: float, error_s: float) -> bool | None:
    """True when ``error_s`` (actual - predicted) is inside the bin's window."""
    i = bin_index(horizon_s)
    if i is None:
        return None
    _, _, _, early, late = BINS[i]
    return early <= error_s <= late


@dataclass
class BinScore:
    """Counts and absolute errors of one bin."""

    n: int = 0
    accurate: int = 0
    abs_errors: list[float] = field(default_factory=list)

    @property
    def share(self) -> float | None:
        """Share of accurate predictions (None without any)."""
        return self.accurate / self.n if self.n else None

    @property
    def mae(self) -> float | None:
        """Mean absolute error in seconds."""
        return sum(self.abs_errors) / self.n if self.n else None

    @property
    def p90(self) -> float | None:
        """90th percentile of the absolute error in seconds."""
        return percentile(sorted(self.abs_errors), 0.9) if self.abs_errors else None


@dataclass
class Scoreboard:
    """Scores per method and bin (and overall)."""

    bins: dict[str, list[BinScore]] = field(default_factory=dict)

    def add(self, method: str, horizon_s: float, error_s: float) -> None:
        """Score one prediction (ignored beyond 30 minutes ahead)."""
        i = bin_index(horizon_s)
        if i is None:
            return
        row = self.bins.setdefault(method, [BinScore() for _ in BINS])
        b = row[i]
        b.n += 1
        _, _, _, early, late = BINS[i]
        b.accurate += early <= error_s <= late
        b.abs_errors.append(abs(error_s))

    def overall(self, method: str) -> BinScore:
        """All bins of a method together."""
        out = BinScore()
        for b in self.bins.get(method, []):
            out.n += b.n
            out.accurate += b.accurate
            out.abs_errors.extend(b.abs_errors)
        return out

    def methods(self) -> Iterable[str]:
        """The methods scored, in the order first seen."""
        return self.bins.keys()
