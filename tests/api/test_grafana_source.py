"""The JSON data source protocol Grafana speaks (simpod-json-datasource), on real data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from fastapi.testclient import TestClient

from tests.grafana.core_seed import seed_core_tables
from tests.support.credentials import Credentials


def _range() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "from": (now - timedelta(hours=6)).isoformat().replace("+00:00", "Z"),
        "to": now.isoformat().replace("+00:00", "Z"),
    }


def test_health_and_metrics_need_a_staff_key(client: TestClient, creds: Credentials) -> None:
    assert client.get("/grafana/").status_code == 401
    assert client.get("/grafana/", headers=creds.headers("resident_a")).status_code == 403
    r = client.get("/grafana/", headers=creds.headers("operator"))
    assert r.json() == {"status": "ok"}
    names = client.post("/grafana/metrics", headers=creds.headers("council"), json={}).json()
    assert {"label": "ingest.lag_seconds", "value": "ingest.lag_seconds"} in names
    lag = client.post(
        "/grafana/metrics", headers=creds.headers("council"), json={"metric": "LAG"}
    ).json()
    assert [m["value"] for m in lag] == ["ingest.lag_seconds"]


def test_query_returns_series_and_tables(
    db_url: str, client: TestClient, creds: Credentials
) -> None:
    seed_core_tables(db_url)
    body = {
        "range": _range(),
        "intervalMs": 600_000,
        "maxDataPoints": 100,
        "targets": [
            {"target": "ingest.lag_seconds", "refId": "A"},
            {"target": "ingest.messages", "refId": "B"},
            {"target": "ingest.rejects_by_reason", "refId": "C", "type": "table"},
            {"target": "ingest.rejects", "refId": "D", "hide": True},
        ],
    }
    r = client.post("/grafana/query", headers=creds.headers("council"), json=body)
    assert r.status_code == 200, r.text
    lag, messages, reasons = r.json()
    assert lag["target"] == "ingest.lag_seconds" and lag["refId"] == "A"
    assert lag["datapoints"], "seeded telemetry gives lag points"
    for value, ms in lag["datapoints"]:
        assert 0.3 < value < 1.0  # the seed stores each message 0.4..0.8 s late
        assert ms % 600_000 == 0  # buckets of intervalMs
    with psycopg.connect(db_url) as conn:
        total = conn.execute(
            "SELECT (SELECT count(*) FROM bus_telemetry) + (SELECT count(*) FROM bus_events)"
            " + (SELECT count(*) FROM fiveg_radio) + (SELECT count(*) FROM fiveg_sensor)"
            " WHERE true"
        ).fetchone()
    stored = sum(v for v, _ in messages["datapoints"])
    assert total is not None and 0 < stored <= total[0]
    assert reasons["type"] == "table"
    assert [c["text"] for c in reasons["columns"]] == ["reason", "messages", "last seen"]
    assert reasons["rows"][0][:2] == ["invalid JSON", 2]


def test_query_errors_are_problems(client: TestClient, creds: Credentials) -> None:
    h = creds.headers("council")
    r = client.post(
        "/grafana/query", headers=h, json={"range": _range(), "targets": [{"target": "nope"}]}
    )
    assert r.status_code == 422 and r.json()["type"].endswith("/unknown-series")
    backwards = {"from": _range()["to"], "to": _range()["from"]}
    r = client.post("/grafana/query", headers=h, json={"range": backwards, "targets": []})
    assert r.status_code == 422 and r.json()["type"].endswith("/invalid-range")
