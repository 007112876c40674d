"""The live adapter's and the accuracy report's pure parts (no database)."""

from __future__ import annotations

from datetime import date

from mobility.predictions.accuracy import Accuracy, accuracy_report, lines_from_rows
from mobility.predictions.engine import Predictor
from mobility.predictions.live import (
    LiveVehicle,
    StopTimeRow,
    planned_trip,
    predict_all,
    progress_of,
)
from mobility.predictions.model import Model
from mobility.predictions.upcoming import Ending, NextTrip, assign_next_trips
from mobility.vehicles.schedule import service_day_epoch

DAY = date(2026, 11, 25)
DAY0 = service_day_epoch(DAY)
# Three stops about 1 km apart along a meridian, 3 minutes between them at 08:00.
ROWS = [
    StopTimeRow("t", 1, "A", 8 * 3600, 8 * 3600, 36.380, 139.06),
    StopTimeRow("t", 2, "B", 8 * 3600 + 180, 8 * 3600 + 200, 36.389, 139.06),
    StopTimeRow("t", 3, "C", 8 * 3600 + 380, 8 * 3600 + 380, 36.398, 139.06),
]


def vehicle(**kw: object) -> LiveVehicle:
    base: dict[str, object] = {
        "vehicle_id": "v",
        "ts": DAY0 + 8 * 3600 + 90,
        "lat": 36.3845,
        "lon": 139.06,
        "status": "in_transit",
        "trip_id": "t",
        "route_id": "R",
        "direction_id": 0,
        "service_date": DAY,
        "next_stop_sequence": 2,
        "arrived_at": None,
    }
    base.update(kw)
    return LiveVehicle(**base)  # type: ignore[arg-type]


def test_planned_trip_epochs_and_distances() -> None:
    trip = planned_trip("t", "R", 0, DAY, ROWS)
    assert [s.arrival - DAY0 for s in trip.stops] == [28800, 28980, 29180]
    assert trip.stops[0].dist_m == 0
    assert 990 < trip.stops[1].dist_m < 1010 and 1990 < trip.stops[2].dist_m < 2010


def test_progress_between_at_and_before() -> None:
    trip = planned_trip("t", "R", 0, DAY, ROWS)
    mid = progress_of(vehicle(), trip, ROWS)
    assert mid is not None and not mid.at_stop and mid.next_index == 1
    assert abs(mid.dist_m - trip.stops[1].dist_m / 2) < 5
    stopped = progress_of(
        vehicle(status="stopped_at", lat=36.389, arrived_at=DAY0 + 28975), trip, ROWS
    )
    assert stopped is not None and stopped.at_stop and stopped.arrived_at == DAY0 + 28975
    waiting = progress_of(vehicle(next_stop_sequence=1, status="layover"), trip, ROWS)
    assert waiting is not None and not waiting.started
    assert progress_of(vehicle(next_stop_sequence=9), trip, ROWS) is None


def test_predict_all_uses_timetable_fallback_without_history() -> None:
    now = DAY0 + 8 * 3600 + 90
    out = predict_all(Predictor(Model()), [vehicle(ts=now)], {"t": ROWS}, now)
    _trip, preds = out["v"]
    assert [p.stop_id for p in preds] == ["B", "C"]
    # half of a 180 s segment left; learned nothing: the timetable's running time
    assert abs(preds[0].arrival - (now + 90)) <= 2
    assert preds[1].arrival > preds[0].departure >= preds[0].arrival
    assert predict_all(Predictor(Model()), [vehicle(trip_id="x")], {"t": ROWS}, now) == {}


def test_accuracy_report_lines() -> None:
    rows = [("all", 0, 10, 9, 30.0, 55.0), ("all", 3, 4, 2, 200.0, 300.0)]
    total = lines_from_rows(rows)
    assert total[0].n == 14 and total[0].share == 11 / 14
    acc = Accuracy(lines_from_rows([("前橋高崎線", 0, 10, 9, 30.0, 55.0)]), total, total)
    ja = "\n".join(accuracy_report(acc, "ja"))
    assert "前橋高崎線" in ja and "90.0%" in ja and "系統別の的中率" in ja
    assert "| 0-3分先 | 10 | 90.0% | 30 | 55 |" in ja
    assert accuracy_report(Accuracy([], [], []), "en") == ["No scored predictions in this period."]


def test_next_trips_go_to_the_bus_that_ends_there_just_before() -> None:
    t0 = DAY0 + 9 * 3600
    here, far = (36.39, 139.06), (36.45, 139.06)
    endings = [
        Ending("early", *here, t0 - 3000, t0 - 2900, 30),  # ended 50 min before
        Ending("late", *here, t0 - 600, t0 - 60, 40),  # ended 10 min before (late)
        Ending("away", *far, t0 - 600, t0 - 600, 30),  # elsewhere
        Ending("tight", *here, t0 - 60, t0 - 60, 30),  # too tight for a, fits b
    ]
    trips = [
        NextTrip(("a", DAY), *here, t0),
        NextTrip(("b", DAY), *here, t0 + 600),
        NextTrip(("c", DAY), *far, t0 + 10_000),  # nobody within 90 min
    ]
    got = {k[0]: e.vehicle_id for k, e in assign_next_trips(trips, endings).items()}
    assert got == {"a": "late", "b": "tight"}  # each bus one trip, the latest that fits
