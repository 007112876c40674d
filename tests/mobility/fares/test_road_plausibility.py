"""The fare plausibility flag uses the road network when MEBUKU_ROAD_GRAPH_PATH is set."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import osmnx as ox
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.embedded import EmbeddedMosquitto
from mobility.fares.plausibility import expected_taxi_fare, fare_far_from_expected
from mobility.fares.rules import JST
from mobility.network import build_graph_from_shapes
from tests.conftest import make_settings
from tests.mobility.fares.conftest import RULES_WINDOW_DAYS
from tests.support.credentials import OPERATOR, Credentials

STATION = (36.38373, 139.072877)  # (lat, lon) 前橋駅
CHUO = (36.392176, 139.074485)  # 中央前橋駅前


@pytest.fixture(scope="module")
def road_client(
    db_url: str, mqtt_broker: EmbeddedMosquitto, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    # The only road between the two stations detours about 3 km east and back.
    detour = [STATION, (36.3840, 139.1050), (36.3920, 139.1050), CHUO]
    path = tmp_path_factory.mktemp("roads") / "detour.graphml"
    ox.save_graphml(build_graph_from_shapes({"detour": detour}), path)
    settings = make_settings(
        db_url,
        mqtt_broker.url,
        road_graph_path=path,
        fares_submission_window_days=RULES_WINDOW_DAYS,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def ride(record: str, fare: int) -> dict[str, object]:
    t = datetime(2026, 10, 6, 10, 0, tzinfo=JST)
    return {
        "record_id": record,
        "vehicle_id": "taxi-road",
        "pickup_at": t.isoformat(),
        "dropoff_at": t.replace(minute=20).isoformat(),
        "pickup": {"lat": STATION[0], "lon": STATION[1]},
        "dropoff": {"lat": CHUO[0], "lon": CHUO[1]},
        "meter_fare_yen": fare,
        "rider_cards": ["0D0D000000000001"],
    }


def test_expected_fare_steps() -> None:
    assert expected_taxi_fare(0) == expected_taxi_fare(1200) == 500
    assert expected_taxi_fare(1201) == 600 and expected_taxi_fare(1470) == 600
    assert fare_far_from_expected(5000, 1000) and not fare_far_from_expected(700, 1000)


def test_meter_fare_checked_against_road_distance(
    road_client: TestClient, keys: Credentials
) -> None:
    h = {"X-API-Key": keys.operator}
    url = f"/v1/operators/{OPERATOR}/taxi-rides"
    # 700 yen is plausible for the 1 km straight line, but not for ~7 km of road
    r = road_client.post(url, json=ride("ROAD-1", 700), headers=h)
    assert r.status_code == 200, r.text
    assert "fare-far-from-distance" in r.json()["flags"]
    r = road_client.post(url, json=ride("ROAD-2", 2400), headers=h)
    assert "fare-far-from-distance" not in r.json()["flags"]


def test_straight_line_fallback_without_a_graph(client: TestClient, keys: Credentials) -> None:
    r = client.post(
        f"/v1/operators/{OPERATOR}/taxi-rides",
        json=ride("LINE-1", 700),
        headers={"X-API-Key": keys.operator},
    )
    assert r.status_code == 200 and "fare-far-from-distance" not in r.json()["flags"]
