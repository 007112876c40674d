"""Train the engine on simulated days and score it on other days (pure, in memory).

Three predictors are scored on the same opportunities (every vehicle, every minute, every
stop ahead of it within 30 minutes, including the next trip of a bus in layover at its
terminal): the timetable alone, today's carry-forward (the vehicle's current schedule
deviation added to every later stop, as ``mobility.realtime`` does), and the engine.
"""

from __future__ import annotations

import bisect
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from mobility.predictions.engine import EngineConfig, PlannedTrip, Predictor, Progress
from mobility.predictions.model import Model, Traversal, learn
from mobility.predictions.scoring import MAX_HORIZON_S, Scoreboard
from mobility.predictions.sim import (
    Block,
    Network,
    TripRun,
    build_blocks,
    draw_city,
    observations,
    simulate_day,
)
from mobility.realtime import StopAhead, predicted_times

TIMETABLE, CARRY, ENGINE = "timetable", "carry_forward", "engine"


@dataclass(frozen=True)
class EvalConfig:
    """What to simulate and how often to sample predictions."""

    train_days: int = 14
    test_days: int = 3
    seed: int = 1
    first_day: date = date(2025, 6, 2)  # a Monday inside the bundled feed's calendar
    sample_s: int = 60
    engine: EngineConfig = field(default_factory=EngineConfig)


@dataclass
class EvalResult:
    """Scores per method and the engine's throughput."""

    scores: Scoreboard
    train_days: list[date]
    test_days: list[date]
    routes: int
    trips: int
    predictions: int
    throughput_per_s: float
    stops_per_prediction: float


def _days(cfg: EvalConfig) -> tuple[list[date], list[date]]:
    train = [cfg.first_day + timedelta(days=i) for i in range(cfg.train_days)]
    # held out: after a gap, so no test day is a training day's twin
    start = cfg.first_day + timedelta(days=cfg.train_days + 4)
    return train, [start + timedelta(days=i) for i in range(cfg.test_days)]


def simulate(network: Network, day: date, seed: int, city_seed: int) -> list[Block]:
    """One simulated day of all city routes (blocks built from that day's timetable)."""
    city = draw_city(network.schedule, set(network.routes), city_seed)
    blocks = build_blocks(network.trips_on(day), network.stops)
    return simulate_day(blocks, city, day, seed)


def train(network: Network, days: Sequence[date], seed: int) -> Model:
    """The engine's statistics learned from simulated days (day seeds differ per day)."""
    trav: list[Traversal] = []
    dw = []
    for i, d in enumerate(days):
        t, w = observations(simulate(network, d, seed * 1000 + i, seed))
        trav.extend(t)
        dw.extend(w)
    return Model.from_rows(learn(trav, dw), network.seg_lengths())


@dataclass(frozen=True)
class Snapshot:
    """A vehicle's situation at one moment, with what actually happens next."""

    vehicle_id: str
    now: float
    run: TripRun
    progress: Progress
    delay_s: float  # what the tracker would report (carry-forward's input)


def _position(run: TripRun, j: int, t: float) -> float:
    """Metres along the trip at ``t`` while driving from stop j-1 to stop j."""
    stops = run.trip.stops
    a, b = stops[j - 1], stops[j]
    dep, arr = run.departures[j - 1], run.arrivals[j]
    share, wait = run.waits[j - 1]
    move = max(arr - dep - wait, 1e-6)
    length = b.dist_m - a.dist_m
    at_wait = dep + share * move
    if t <= at_wait:
        done = (t - dep) / move
    elif t <= at_wait + wait:
        done = share
    else:
        done = (t - dep - wait) / move
    return a.dist_m + min(max(done, 0.0), 1.0) * length


def _scheduled_at(trip: PlannedTrip, j: int, dist: float) -> float:
    """The timetable's time for being at ``dist`` between stop j-1 and j (as the tracker)."""
    a, b = trip.stops[j - 1], trip.stops[j]
    span = b.dist_m - a.dist_m
    f = (dist - a.dist_m) / span if span > 0 else 1.0
    return a.departure + f * (b.arrival - a.departure)


def snapshot(block: Block, now: float, rng: random.Random | None = None) -> Snapshot | None:
    """Where the block's bus is at ``now`` (None before its first trip or after its last).

    With ``rng`` the tracker's measurement errors are added: GPS position (sigma 10 m
    along the road) and the detected arrival time (sigma 3 s)."""
    for r, run in enumerate(block.runs):
        if not run.arrivals or now >= run.arrivals[-1]:
            continue
        ready = run.arrivals[0]
        first = run.trip.stops[0]
        if now < run.departures[0]:
            if r == 0 and now < ready:
                return None
            prog = Progress(now, 0, first.dist_m, started=False, ready_at=max(ready, now))
            return Snapshot(block.vehicle_id, now, run, prog, max(0.0, now - first.departure))
        j = bisect.bisect_right(run.departures, now)
        s = run.trip.stops[j]
        if now >= run.arrivals[j]:
            seen = run.arrivals[j] + (rng.gauss(0, 3.0) if rng else 0.0)
            prog = Progress(now, j, s.dist_m, at_stop=True, arrived_at=min(seen, now))
            return Snapshot(block.vehicle_id, now, run, prog, now - s.departure)
        dist = _position(run, j, now)
        if rng is not None:
            lo, hi = run.trip.stops[j - 1].dist_m, s.dist_m
            dist = min(max(dist + rng.gauss(0, 10.0), lo), hi)
        prog = Progress(now, j, dist)
        return Snapshot(block.vehicle_id, now, run, prog, now - _scheduled_at(run.trip, j, dist))
    return None


def _targets(snap: Snapshot) -> Iterator[tuple[int, float]]:
    """(stop index, actual time) of the events still to come: arrivals, and the departure
    from the first stop."""
    run, now = snap.run, snap.now
    for k in range(snap.progress.next_index, len(run.trip.stops)):
        actual = run.departures[k] if k == 0 else run.arrivals[k]
        if actual > now and actual - now <= MAX_HORIZON_S * 1.5:
            yield k, actual


def _carry_forward(snap: Snapshot) -> list[int]:
    stops = snap.run.trip.stops[snap.progress.next_index :]
    ahead = [StopAhead(s.sequence, s.stop_id, s.arrival, s.departure) for s in stops]
    from datetime import UTC, datetime

    times = predicted_times(ahead, round(snap.delay_s), datetime.fromtimestamp(snap.now, UTC))
    return [a for a, _ in times]


def score_snapshot(predictor: Predictor, snap: Snapshot, board: Scoreboard, block: Block) -> int:
    """Score the three methods on one snapshot; returns the engine's predictions made."""
    i0 = snap.progress.next_index
    stops = snap.run.trip.stops
    preds = predictor.predict(snap.run.trip, snap.progress, snap.now, vehicle_id=snap.vehicle_id)
    carry = _carry_forward(snap)
    now = snap.now
    for k, actual in _targets(snap):
        s = stops[k]
        tt = max(s.departure if k == 0 else s.arrival, now)
        e = preds[k - i0]
        eng = e.departure if k == 0 else e.arrival
        cf = carry[k - i0]
        for method, predicted in ((TIMETABLE, tt), (CARRY, float(cf)), (ENGINE, float(eng))):
            board.add(method, predicted - now, actual - predicted)
    return len(preds)


def _observations_timeline(blocks: Sequence[Block]) -> list[tuple[float, str, Traversal]]:
    out = []
    for b in blocks:
        for run in b.runs:
            tr = run.trip
            for j in range(len(run.arrivals) - 1):
                a, c = tr.stops[j], tr.stops[j + 1]
                out.append(
                    (
                        run.arrivals[j + 1],
                        b.vehicle_id,
                        Traversal(
                            tr.route_id,
                            tr.direction_id,
                            a.stop_id,
                            c.stop_id,
                            run.departures[j],
                            run.arrivals[j + 1] - run.departures[j],
                            c.arrival - a.departure,
                        ),
                    )
                )
    out.sort(key=lambda x: x[0])
    return out


def evaluate_day(
    predictor: Predictor, blocks: Sequence[Block], board: Scoreboard, sample_s: int
) -> int:
    """Replay a test day minute by minute: feed finished segments to the engine's live
    memory, score every vehicle's predictions. Returns the predictions made."""
    timeline = _observations_timeline(blocks)
    starts = [b.runs[0].arrivals[0] for b in blocks if b.runs and b.runs[0].arrivals]
    ends = [b.runs[-1].arrivals[-1] for b in blocks if b.runs and b.runs[-1].arrivals]
    if not starts:
        return 0
    t, end = min(starts), max(ends)
    k = made = 0
    rng = random.Random(int(t))
    while t < end:
        while k < len(timeline) and timeline[k][0] <= t:
            predictor.observe(timeline[k][2], vehicle_id=timeline[k][1])
            k += 1
        for b in blocks:
            snap = snapshot(b, t, rng)
            if snap is not None:
                made += score_snapshot(predictor, snap, board, b)
        t += sample_s
    return made


def throughput(
    predictor: Predictor, blocks: Sequence[Block], limit: int = 20_000
) -> tuple[float, float]:
    """Engine predictions per CPU second at telemetry rate (every vehicle every second
    from two hours after the first bus on), and the mean number of stops per call."""
    starts = [b.runs[0].arrivals[0] for b in blocks if b.runs and b.runs[0].arrivals]
    t = min(starts) + 2 * 3600
    inputs: list[tuple[PlannedTrip, Progress, float, str]] = []
    while len(inputs) < limit:
        for b in blocks:
            snap = snapshot(b, t)
            if snap is not None:
                inputs.append((snap.run.trip, snap.progress, t, b.vehicle_id))
        t += 1.0
    inputs = inputs[:limit]
    stops = 0
    # CPU time of this process: on a shared machine wall time measures the neighbours
    began = time.process_time()
    for trip, prog, now, vid in inputs:
        stops += len(predictor.predict(trip, prog, now, vehicle_id=vid))
    took = time.process_time() - began
    return len(inputs) / took, stops / len(inputs)


def evaluate(
    network: Network, cfg: EvalConfig, progress: Callable[[str], None] | None = None
) -> EvalResult:
    """Train on ``cfg.train_days`` simulated days, score on ``cfg.test_days`` others."""
    say = progress or (lambda _m: None)
    train_days, test_days = _days(cfg)
    say("train")
    model = train(network, train_days, cfg.seed)
    board = Scoreboard()
    made = trips = 0
    rate = per_call = 0.0
    for i, d in enumerate(test_days):
        say(f"test {d}")
        blocks = simulate(network, d, cfg.seed * 1000 + 500 + i, cfg.seed)
        trips += sum(len(b.runs) for b in blocks)
        predictor = Predictor(model, cfg.engine)
        made += evaluate_day(predictor, blocks, board, cfg.sample_s)
        if i == 0:
            rate, per_call = throughput(Predictor(model, cfg.engine), blocks)
    return EvalResult(
        board, train_days, test_days, len(network.routes), trips, made, rate, per_call
    )
