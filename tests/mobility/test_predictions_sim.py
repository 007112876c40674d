"""The variability simulator, the MBTA scoring and the evaluation (all in memory)."""

from __future__ import annotations

from datetime import date

import pytest

from mobility.predictions.evaluate import CARRY, ENGINE, TIMETABLE, EvalConfig, evaluate, simulate
from mobility.predictions.scoring import Scoreboard, bin_index, is_accurate
from mobility.predictions.sim import Network, bundled_network, draw_city, draw_day, observations

DAY = date(2025, 6, 4)


@pytest.fixture(scope="module")
def network() -> Network:
    return bundled_network()


def test_city_routes_from_the_bundled_feed(network: Network) -> None:
    assert "新前橋駅西口線_A" in network.routes and "前橋高崎線_A" in network.routes
    assert not any("ぐるりん" in r for r in network.routes)  # Takasaki's loop buses
    assert network.trips_on(DAY)


def test_same_seed_same_day_other_seed_other_day(network: Network) -> None:
    a = simulate(network, DAY, 7, 1)
    b = simulate(network, DAY, 7, 1)
    c = simulate(network, DAY, 8, 1)
    arr = [x for blk in a for r in blk.runs for x in r.arrivals]
    assert arr == [x for blk in b for r in blk.runs for x in r.arrivals]
    assert arr != [x for blk in c for r in blk.runs for x in r.arrivals]
    # a new run seed is a new city
    other = draw_city(network.schedule, set(network.routes), 2)
    assert other.seg_speed != draw_city(network.schedule, set(network.routes), 1).seg_speed


def test_buses_behave(network: Network) -> None:
    blocks = simulate(network, DAY, 3, 1)
    for blk in blocks:
        prev_end = None
        for run in blk.runs:
            stops = run.trip.stops
            assert len(run.arrivals) == len(stops) == len(run.departures)
            for j, s in enumerate(stops):
                assert run.departures[j] >= run.arrivals[j]
                if j < len(stops) - 1:
                    assert run.departures[j] >= s.departure  # never leaves early
                    assert run.arrivals[j + 1] > run.departures[j]
            if prev_end is not None:
                assert run.departures[0] >= prev_end + 120  # layover
            prev_end = run.arrivals[-1]
    trav, dwells = observations(blocks)
    assert trav and dwells
    assert any(d.held for d in dwells) and any(not d.held and d.seconds > 0 for d in dwells)


def test_days_differ_in_traffic(network: Network) -> None:
    city = draw_city(network.schedule, set(network.routes), 1)
    days = [draw_day(city, DAY, s) for s in range(20)]
    assert len({round(d.intensity, 4) for d in days}) >= 18
    assert any(d.rain for d in days) and any(not d.rain for d in days)
    assert any(d.incidents for d in days)


def test_mbta_bins() -> None:
    assert bin_index(0) == 0 and bin_index(179) == 0 and bin_index(180) == 1
    assert bin_index(719) == 2 and bin_index(1799) == 3 and bin_index(1800) is None
    assert is_accurate(100, -60) and not is_accurate(100, -61) and not is_accurate(100, 61)
    assert is_accurate(200, -90) and is_accurate(200, 120) and not is_accurate(200, 121)
    assert is_accurate(400, 210) and not is_accurate(400, -151)
    assert is_accurate(1000, 360) and is_accurate(1000, -240) and not is_accurate(1000, 361)
    board = Scoreboard()
    for err in (0, 30, -70, 200):
        board.add("m", 60, err)
    b = board.bins["m"][0]
    assert b.n == 4 and b.accurate == 2 and b.mae == 75.0
    assert board.overall("m").share == 0.5


def test_engine_beats_the_baselines_on_held_out_days(network: Network) -> None:
    res = evaluate(network, EvalConfig(train_days=4, test_days=1, seed=5, sample_s=300))
    s = res.scores
    assert set(s.methods()) == {TIMETABLE, CARRY, ENGINE}
    eng, cf, tt = (s.overall(m) for m in (ENGINE, CARRY, TIMETABLE))
    assert eng.n > 1000
    assert (eng.share or 0) > (cf.share or 0) > (tt.share or 0) * 0.9
    assert (eng.mae or 1e9) < (cf.mae or 0)
    assert res.throughput_per_s > 0 and res.stops_per_prediction > 1
