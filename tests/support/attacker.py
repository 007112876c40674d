"""The open-data attacker: tries to recover cells describing fewer than k persons from
published tables (issue 16). Test code: it is what the privacy tests play against.

Published tables are mappings ``cell -> value | None`` (None = suppressed) over the
extended grid (``opendata.privacy.TOTAL`` marks totals), one per release. Three attacks:

- **totals**: linear programming over each release's row and column equations (cells
  are non-negative; a town's total is at most its population, from the town table):
  a suppressed cell whose minimum equals its maximum is recovered;
- **differencing**: a cell published in two consecutive releases whose value moved by
  fewer than k reveals a group of fewer than k persons (the late additions);
- **joins**: everything above is solved jointly over the releases with the town
  population bounds and "counts only grow" links between the same cell in consecutive
  releases (true for late-arriving data, so it only helps the attacker).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linprog

from opendata.privacy import TOTAL, Cell

Release = Mapping[Cell, int | None]


@dataclass(frozen=True)
class Finding:
    """A recovered cell: which release, which cell, how, and the value learnt."""

    release: int
    cell: Cell
    how: str
    value: float


def _lines(cells: Sequence[Cell]) -> list[tuple[Cell, list[Cell]]]:
    """(total cell, its parts) for every row and column of the extended grid."""
    rows = [*sorted({r for r, _ in cells if r != TOTAL}), TOTAL]
    cols = [*sorted({c for _, c in cells if c != TOTAL}), TOTAL]
    out = [((r, TOTAL), [(r, c) for c in cols if c != TOTAL]) for r in rows]
    out += [((TOTAL, c), [(r, c) for r in rows if r != TOTAL]) for c in cols]
    return out


def _system(
    releases: Sequence[Release], population: Mapping[str, int]
) -> tuple[list[tuple[int, Cell]], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unknowns (release, cell) and A_eq x = b_eq, A_ub x <= b_ub over all releases."""
    unknown = [
        (i, c) for i, rel in enumerate(releases) for c, v in sorted(rel.items()) if v is None
    ]
    index = {u: j for j, u in enumerate(unknown)}
    eq_rows: list[np.ndarray] = []
    eq_b: list[float] = []
    ub_rows: list[np.ndarray] = []
    ub_b: list[float] = []

    def term(i: int, cell: Cell, coef: float, row: np.ndarray) -> float:
        v = releases[i].get(cell, 0)
        if v is None:
            row[index[(i, cell)]] += coef
            return 0.0
        return coef * float(v)

    for i, rel in enumerate(releases):
        for total, parts in _lines(list(rel)):
            row = np.zeros(len(unknown))
            const = sum(term(i, p, 1.0, row) for p in parts) + term(i, total, -1.0, row)
            if row.any():
                eq_rows.append(row)
                eq_b.append(-const)
        for town, pop in population.items():
            row = np.zeros(len(unknown))
            const = term(i, (town, TOTAL), 1.0, row)
            if row.any():
                ub_rows.append(row)
                ub_b.append(pop - const)
        if i + 1 < len(releases):  # counts only grow between releases
            for cell in rel:
                row = np.zeros(len(unknown))
                const = term(i, cell, 1.0, row) + term(i + 1, cell, -1.0, row)
                if row.any():
                    ub_rows.append(row)
                    ub_b.append(-const)
    n = len(unknown)
    a_eq = np.array(eq_rows) if eq_rows else np.zeros((0, n))
    a_ub = np.array(ub_rows) if ub_rows else np.zeros((0, n))
    return unknown, a_eq, np.array(eq_b), a_ub, np.array(ub_b)


def _bounds_of(j: int, system: tuple[Any, ...]) -> tuple[float, float]:
    unknown, a_eq, b_eq, a_ub, b_ub = system
    c = np.zeros(len(unknown))
    out = []
    for sign in (1.0, -1.0):
        c[j] = sign
        res = linprog(
            c,
            A_ub=a_ub if len(a_ub) else None,
            b_ub=b_ub if len(b_ub) else None,
            A_eq=a_eq if len(a_eq) else None,
            b_eq=b_eq if len(b_eq) else None,
            bounds=(0, None),
            method="highs",
        )
        out.append(sign * res.fun if res.status == 0 else (0.0 if sign > 0 else float("inf")))
    return out[0], out[1]


def attack(
    releases: Sequence[Release],
    truth: Sequence[Mapping[Cell, int]],
    k: int,
    population: Mapping[str, int] | None = None,
) -> list[Finding]:
    """Every cell of true value 1..k-1 the attacker recovers, and every small difference."""
    population = population or {}
    findings: list[Finding] = []
    for i in range(1, len(releases)):
        for cell, v in releases[i].items():
            before = releases[i - 1].get(cell)
            if v is not None and before is not None and 0 < abs(v - before) < k:
                findings.append(Finding(i, cell, "differencing", float(v - before)))
    for i, rel in enumerate(releases):
        for cell, v in rel.items():
            if v is not None and 0 < v < k:
                findings.append(Finding(i, cell, "published", float(v)))
            if cell[0] in population and population[cell[0]] < k and v:
                findings.append(Finding(i, cell, "small town", float(v)))
    system = _system(releases, population)
    for j, (i, cell) in enumerate(system[0]):
        true = truth[i][cell]
        if not 0 < true < k:
            continue
        lo, hi = _bounds_of(j, system)
        if hi - lo < 0.5:
            findings.append(Finding(i, cell, "totals", lo))
    return findings
