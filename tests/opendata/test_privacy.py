"""Issue 16, item 2: privacy by construction (pure, no I/O), played against an attacker."""

from __future__ import annotations

import random

import pytest

from opendata.privacy import (
    TOTAL,
    CountTable,
    Previous,
    naive_protect,
    noisy_counts,
    primary_cells,
    protect,
    remember,
)
from tests.support.attacker import attack

K = 10
TOWNS = ("t01", "t02", "t03", "t04", "t05", "t06", "t07", "t08")
BANDS = ("under65", "65to74", "75to84", "85plus")
# From the town table: t08 is a hamlet of 6 people (anything about it describes < k).
POPULATION = {t: 900 + 100 * i for i, t in enumerate(TOWNS[:-1])} | {"t08": 6}


def three_releases(seed: int) -> list[dict[tuple[str, str], int]]:
    """One month's residents by town and age band as three releases see it: late records
    keep arriving, so cells grow between releases, some by fewer than k."""
    rng = random.Random(seed)
    first = {}
    for t in TOWNS:
        for b in BANDS:
            first[(t, b)] = rng.choice((0, 1, 2, 3, 5, 8, 12, 15, 20, 30, 45))
    first[("t08", "75to84")] = 3
    first[("t01", "85plus")] = 4  # the only small cell of its row: naive suppression leaks
    first[("t01", "under65")], first[("t01", "65to74")], first[("t01", "75to84")] = 20, 30, 40
    out = [first]
    for _ in range(2):
        nxt = dict(out[-1])
        for cell in rng.sample(sorted(nxt), 8):
            nxt[cell] += rng.choice((1, 2, 3, 11, 14))
        nxt[("t02", "65to74")] = out[-1][("t02", "65to74")] + 2  # a small late addition
        out.append(nxt)
    return out


def table(cells: dict[tuple[str, str], int]) -> CountTable:
    return CountTable("mytaku_residents/2026-05", TOWNS, BANDS, cells)


def publish(p) -> dict[tuple[str, str], int | None]:
    return {cell: p.published(cell) for cell in p.values}


def truth(cells: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    t = table(cells)
    return {(r, c): t.value(r, c) for r in t.all_rows for c in t.all_cols}


def small_town_cells() -> list[tuple[str, str]]:
    return [(t, b) for t, p in POPULATION.items() if p < K for b in (*BANDS, TOTAL)]


def run_releases(seed: int, *, with_history: bool = True):
    history: dict[str, Previous] = {}
    published, truths = [], []
    for cells in three_releases(seed):
        p = protect(table(cells), K, history if with_history else {}, small_town_cells())
        remember(history, p)
        published.append(publish(p))
        truths.append(truth(cells))
    return published, truths


@pytest.mark.parametrize("seed", range(6))
def test_the_attacker_recovers_nothing_below_k_across_three_releases(seed: int) -> None:
    published, truths = run_releases(seed)
    assert any(v is None for v in published[0].values())  # there was something to protect
    assert attack(published, truths, K, POPULATION) == []


def test_naive_suppression_is_recovered_from_the_totals() -> None:
    cells = three_releases(0)[0]
    naive = publish(naive_protect(table(cells), K))
    found = attack([naive], [truth(cells)], K, POPULATION)
    assert ("t01", "85plus") in {f.cell for f in found if f.how == "totals"}
    recovered = {f.cell: f.value for f in found if f.how == "totals"}
    assert recovered[("t01", "85plus")] == pytest.approx(4)


def test_without_release_history_differencing_reveals_small_groups() -> None:
    published, truths = run_releases(0, with_history=False)
    found = attack(published, truths, K, POPULATION)
    assert {f.how for f in found} & {"differencing", "totals"}


def test_a_cell_suppressed_once_stays_suppressed() -> None:
    history: dict[str, Previous] = {}
    first = {(t, b): 20 for t in TOWNS for b in BANDS} | {("t03", "65to74"): 2}
    p1 = protect(table(first), K, history)
    remember(history, p1)
    later = dict(first) | {("t03", "65to74"): 40}  # no longer small
    p2 = protect(table(later), K, history)
    assert p1.suppressed <= p2.suppressed
    assert ("t03", "65to74") in p2.primary


def test_primary_suppression_rules() -> None:
    t = table({("t01", "under65"): 3, ("t02", "under65"): 12, ("t03", "under65"): 30})
    hist = {t.key(("t03", "under65")): Previous(25.0, False)}
    got = primary_cells(t, K, hist)
    assert ("t01", "under65") in got  # below k
    assert ("t02", "under65") not in got
    assert ("t03", "under65") in got  # moved by 5 since the last release
    assert ("t01", TOTAL) in got  # a row total of 3 is a small cell too


def test_every_positive_suppressed_cell_lies_on_a_cycle() -> None:
    cells = three_releases(3)[0]
    p = protect(table(cells), K)
    for r, c in p.suppressed:
        if p.values[(r, c)] == 0:
            continue
        same_row = [x for x in p.suppressed if x[0] == r and x != (r, c) and p.values[x] > 0]
        same_col = [x for x in p.suppressed if x[1] == c and x != (r, c) and p.values[x] > 0]
        assert same_row and same_col, (r, c)


def test_noise_is_calibrated_and_its_budget_reported() -> None:
    values = {(t, b): 50 for t in TOWNS for b in BANDS}
    noisy, spend = noisy_counts(values, 0.5, "mytaku_residents/2026-05")
    assert spend.epsilon == pytest.approx(0.5) and spend.scale == pytest.approx(2.0)
    assert set(noisy) == set(values) and all(v >= 0 for v in noisy.values())
    assert noisy != values  # 32 draws of scale 2 are not all zero
    assert abs(sum(noisy.values()) - sum(values.values())) < 60
    with pytest.raises(ValueError):
        noisy_counts(values, 0, "x")
