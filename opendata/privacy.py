"""Privacy by construction for published count tables (pure: plain values in and out).

A table is a two-way count table (rows x columns) published with its row totals, column
totals and grand total. Nothing that describes fewer than ``k`` persons is published:

1. **Primary suppression**: a cell (marginals included) with ``0 < value < k``; a cell
   suppressed in any earlier release (once suppressed, always suppressed); a cell whose
   value moved by ``0 < |change| < k`` since it was last published (two releases must not
   be differenced to reveal a small group); cells the caller forces (e.g. towns whose
   population is below k).
2. **Complementary suppression**: row and column totals are linear equations over the
   cells. A suppressed cell can be solved for exactly unless it lies on a *cycle* of
   suppressed cells (rows and columns as vertices, cells as edges: a suppressed cell is
   determined exactly when it is a bridge of that graph). With every cell of the cycle
   positive the cycle can be shifted by +-t without breaking any total or going negative,
   so an attacker's bounds stay an interval. Cells are added (cheapest 2x2 rectangle of
   positive cells) until every positive suppressed cell lies on a positive cycle, and
   until the suppressed cells of each line with a published total add up to at least k
   (the difference "total minus published cells" is itself a group of persons).

Complementary cells become sticky too: the caller keeps them in the release history.

Optional calibrated noise (:func:`noisy_counts`) adds discrete Laplace noise with OpenDP
to resident counts (each resident counted once per table: L1 sensitivity 1), spending a
declared privacy-loss budget recorded in the release metadata.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from core.extras import require

TOTAL = "_total"
Cell = tuple[str, str]


@dataclass(frozen=True)
class CountTable:
    """A two-way count table: interior cells by (row, column); missing cells are 0."""

    name: str
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    cells: Mapping[Cell, int]

    def value(self, r: str, c: str) -> int:
        """The cell's count, marginals included (row TOTAL / column TOTAL)."""
        if r == TOTAL and c == TOTAL:
            return sum(self.cells.values())
        if r == TOTAL:
            return sum(v for (_, cc), v in self.cells.items() if cc == c)
        if c == TOTAL:
            return sum(v for (rr, _), v in self.cells.items() if rr == r)
        return int(self.cells.get((r, c), 0))

    @property
    def all_rows(self) -> tuple[str, ...]:
        """Rows including the total row."""
        return (*self.rows, TOTAL)

    @property
    def all_cols(self) -> tuple[str, ...]:
        """Columns including the total column."""
        return (*self.cols, TOTAL)

    def key(self, cell: Cell) -> str:
        """The cell's identity across releases."""
        return f"{self.name}|{cell[0]}|{cell[1]}"


@dataclass(frozen=True)
class Previous:
    """What earlier releases did with one cell: last published value, ever suppressed."""

    value: float | None
    suppressed: bool


@dataclass
class Protected:
    """The outcome: which cells are published (value) and which are suppressed, and why."""

    table: CountTable
    values: dict[Cell, int]
    primary: set[Cell] = field(default_factory=set)
    complementary: set[Cell] = field(default_factory=set)

    @property
    def suppressed(self) -> set[Cell]:
        """Every suppressed cell."""
        return self.primary | self.complementary

    def published(self, cell: Cell) -> int | None:
        """The published value, or None when the cell is suppressed."""
        return None if cell in self.suppressed else self.values[cell]


def _grid(table: CountTable) -> dict[Cell, int]:
    """Every cell of the extended grid (interior, row and column totals, grand total)."""
    grid: dict[Cell, int] = {(r, c): 0 for r in table.all_rows for c in table.all_cols}
    for (r, c), v in table.cells.items():
        for cell in ((r, c), (r, TOTAL), (TOTAL, c), (TOTAL, TOTAL)):
            grid[cell] += int(v)
    return grid


def _unsafe_after(prev: Previous | None, v: int, k: int) -> bool:
    """Suppressed before (sticky), or moved by fewer than k since it was last published."""
    if prev is None:
        return False
    moved = prev.value is not None and 0 < abs(v - prev.value) < k
    return prev.suppressed or moved


def primary_cells(
    table: CountTable,
    k: int,
    history: Mapping[str, Previous] | None = None,
    force: Iterable[Cell] = (),
) -> set[Cell]:
    """Cells that must not be published on their own account (rule 1 above)."""
    history = history or {}
    out: set[Cell] = set()
    for cell, v in _grid(table).items():
        if 0 < v < k or _unsafe_after(history.get(table.key(cell)), v, k):
            out.add(cell)
    grid = _grid(table)
    out |= {c for c in force if grid.get(c, 0) > 0}
    return out


def _bridges(edges: set[Cell]) -> set[Cell]:
    """Edges of the bipartite row/column graph that lie on no cycle."""
    adj: dict[tuple[str, str], list[tuple[tuple[str, str], Cell]]] = {}
    for r, c in edges:
        u, v = ("r", r), ("c", c)
        adj.setdefault(u, []).append((v, (r, c)))
        adj.setdefault(v, []).append((u, (r, c)))
    order: dict[tuple[str, str], int] = {}
    low: dict[tuple[str, str], int] = {}
    found: set[Cell] = set()
    for root in adj:
        if root in order:
            continue
        order[root] = low[root] = len(order)
        stack: list[tuple[tuple[str, str], Cell | None, Iterator[tuple[tuple[str, str], Cell]]]]
        stack = [(root, None, iter(adj[root]))]
        while stack:
            node, via, it = stack[-1]
            advanced = False
            for nxt, e in it:
                if e == via:
                    continue
                if nxt in order:
                    low[node] = min(low[node], order[nxt])
                else:
                    order[nxt] = low[nxt] = len(order)
                    stack.append((nxt, e, iter(adj[nxt])))
                    advanced = True
                    break
            if advanced:
                continue
            stack.pop()
            if stack and via is not None:
                parent = stack[-1][0]
                low[parent] = min(low[parent], low[node])
                if low[node] > order[parent]:
                    found.add(via)
    return found


def _rectangle(grid: dict[Cell, int], suppressed: set[Cell], cell: Cell) -> set[Cell] | None:
    """The cheapest set of new cells closing a 2x2 cycle of positive cells through cell."""
    r, c = cell
    rows = {rr for rr, _ in grid}
    cols = {cc for _, cc in grid}
    best: tuple[int, int, str, set[Cell]] | None = None
    for r2 in rows - {r}:
        for c2 in cols - {c}:
            corners = {(r, c2), (r2, c), (r2, c2)}
            if any(grid[x] <= 0 for x in corners):
                continue
            new = corners - suppressed
            cost = (sum(grid[x] for x in new), len(new), f"{r2}|{c2}")
            if best is None or cost < best[:3]:
                best = (*cost, new)
    return None if best is None else best[3]


def _short_lines(grid: dict[Cell, int], sup: set[Cell], k: int) -> list[list[Cell]]:
    """Lines (rows, columns) whose suppressed cells sum below k while the line's total is
    published: the difference "total minus published cells" would be a small group."""
    lines: dict[tuple[str, str], list[Cell]] = {}
    for r, c in grid:
        lines.setdefault(("r", r), []).append((r, c))
        lines.setdefault(("c", c), []).append((r, c))
    out = []
    for (kind, name), cells in sorted(lines.items()):
        total = (name, TOTAL) if kind == "r" else (TOTAL, name)
        hidden = [x for x in cells if x in sup and x != total]
        if total not in sup and hidden and 0 < sum(grid[x] for x in hidden) < k:
            out.append(cells)
    return out


def _close_cycles(grid: dict[Cell, int], sup: set[Cell], bridges: set[Cell]) -> None:
    """A 2x2 positive cycle through each bridge (skipping bridges whose row or column
    this pass already touched: they are looked at again on the next pass)."""
    touched: set[str] = set()
    for r, c in sorted(bridges):
        if r in touched or c in touched:
            continue
        new = _rectangle(grid, sup, (r, c))
        if new is None:  # no positive cycle exists: publish nothing of this table
            sup |= {x for x, v in grid.items() if v > 0}
            return
        sup |= new
        touched |= {x for cell in new for x in cell}


def _widen(grid: dict[Cell, int], sup: set[Cell], line: list[Cell]) -> None:
    """Hide the smallest positive published cell of a line (interior cells first)."""
    candidates = sorted(
        (grid[x], x) for x in line if x not in sup and grid[x] > 0 and TOTAL not in x
    ) or sorted((grid[x], x) for x in line if x not in sup and grid[x] > 0)
    if candidates:
        sup.add(candidates[0][1])
    else:
        sup |= set(line)


def protect(
    table: CountTable,
    k: int,
    history: Mapping[str, Previous] | None = None,
    force: Iterable[Cell] = (),
) -> Protected:
    """Primary and complementary suppression of one table (see the module docstring)."""
    grid = _grid(table)
    primary = primary_cells(table, k, history, force)
    sup = set(primary)
    for _ in range(4 * len(grid) + 4):
        bridges = _bridges({x for x in sup if grid[x] > 0})
        if bridges:
            _close_cycles(grid, sup, bridges)
            continue
        short = _short_lines(grid, sup, k)
        if not short:
            break
        for line in short:
            _widen(grid, sup, line)
    return Protected(table, grid, primary, sup - primary)


def naive_protect(table: CountTable, k: int) -> Protected:
    """Primary suppression only, totals still published (what NOT to do: the attacker
    test shows these cells are recovered from the totals)."""
    grid = _grid(table)
    return Protected(table, grid, {x for x, v in grid.items() if 0 < v < k})


def history_rows(p: Protected) -> list[tuple[str, float | None, bool]]:
    """(cell key, published value, suppressed) of every cell, for the release history."""
    return [
        (p.table.key(cell), None if cell in p.suppressed else float(v), cell in p.suppressed)
        for cell, v in sorted(p.values.items())
    ]


def remember(history: dict[str, Previous], p: Protected) -> None:
    """Fold one release's outcome into the history (sticky suppression, last value)."""
    for key, value, suppressed in history_rows(p):
        prev = history.get(key)
        sticky = suppressed or (prev is not None and prev.suppressed)
        last = value if value is not None else (prev.value if prev else None)
        history[key] = Previous(last, sticky)


@dataclass(frozen=True)
class NoiseSpend:
    """The privacy loss spent on one table: epsilon, mechanism and its scale."""

    table: str
    epsilon: float
    scale: float
    mechanism: str = "discrete Laplace (OpenDP make_laplace over integers)"
    sensitivity: int = 1


def noisy_counts(
    values: Mapping[Cell, int], epsilon: float, table: str, sensitivity: int = 1
) -> tuple[dict[Cell, int], NoiseSpend]:
    """Resident counts with discrete Laplace noise calibrated to ``epsilon`` (OpenDP);
    negative results are clamped to 0 (post-processing costs no privacy)."""
    if epsilon <= 0:
        raise ValueError("epsilon must be positive")
    dp = require("opendp.prelude", "opendata")

    dp.enable_features("contrib")
    scale = sensitivity / epsilon
    keys = sorted(values)
    meas = dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), scale=scale
    )
    noisy = meas([int(values[x]) for x in keys])
    out = {x: max(0, int(v)) for x, v in zip(keys, noisy, strict=True)}
    spent = float(meas.map(sensitivity))
    return out, NoiseSpend(table, spent, scale, sensitivity=sensitivity)
