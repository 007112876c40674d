"""`mebuku demo` shows every council theme with live data: the demo trials it loads name
exactly the sites and devices that the simulator it starts publishes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.demo import DEMO_TRIALS, setup_steps
from fiveg.trial import load_definition
from ingest.simulate.city import City, CityConfig
from tests.conftest import make_settings


def test_demo_trials_cover_the_simulated_devices_of_every_theme() -> None:
    start = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    published: set[tuple[str, str]] = set()
    for m in City(CityConfig(), start).messages(start + timedelta(minutes=2)):
        parts = m.topic.split("/")
        if parts[1] == "5g":
            published.add((parts[2], parts[3]))
    devices = {d for _, d in published}
    sites = {s for s, _ in published}

    trials = [load_definition(p) for p in sorted(DEMO_TRIALS.glob("*.toml"))]
    assert {t.theme for t in trials} == {"transport", "education", "emergency"}
    for t in trials:
        assert t.period_start <= start < t.period_end
        assert {d.device_id for d in t.devices} <= devices, t.trial_id
        assert {s.site_id for s in t.sites} <= sites, t.trial_id


def test_demo_loads_the_feed_and_the_demo_trials() -> None:
    steps = {s.group: s.argv for s in setup_steps(make_settings(None))}
    assert steps["gtfs"][:2] == ["gtfs", "import"]
    assert steps["fiveg"][:2] == ["fiveg", "load-trial"]
    loaded = [a for a in steps["fiveg"] if a.endswith(".toml")]
    assert len(loaded) == len(list(DEMO_TRIALS.glob("*.toml")))
