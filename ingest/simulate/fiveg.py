"""Local-5G test phones and SenML field sensors at the council's three theme sites.

Radio quality falls with distance from the site's gNB (a log-distance path-loss model
with shadowing); SINR, RSRQ, throughput and latency follow from RSRP. Site coordinates
are illustrative points in Maebashi, not surveyed gNB locations.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.geo import distance_m, offset
from ingest.simulate.messages import SimMessage, dumps, rfc3339


@dataclass(frozen=True)
class Site:
    """A local 5G site (one gNB cell), so measurements come from a real place and cell."""

    site_id: str
    theme: str  # transport | education | emergency
    lat: float
    lon: float
    pci: int
    cell_id: str


SITES: tuple[Site, ...] = (
    Site("maebashi-station", "transport", 36.3840, 139.0735, 101, "44012001"),
    Site("chuo-maebashi", "transport", 36.3920, 139.0748, 102, "44012002"),
    Site("campus", "education", 36.4010, 139.0480, 201, "44012101"),
    Site("hospital", "emergency", 36.4210, 139.0650, 301, "44012201"),
)


def radio_sample(site: Site, lat: float, lon: float, rng: random.Random) -> dict[str, object]:
    """One measurement of a phone at (lat, lon) served by ``site``'s gNB (band n79)."""
    d = max(distance_m(lat, lon, site.lat, site.lon), 10.0)
    rsrp = -52.0 - 32.0 * math.log10(d / 10.0) + rng.gauss(0, 3)
    rsrp = min(max(rsrp, -140.0), -44.0)
    sinr = min(max(0.75 * (rsrp + 112.0) + rng.gauss(0, 2), -10.0), 35.0)
    rsrq = min(max(-3.0 - (35.0 - sinr) / 3.5 + rng.gauss(0, 0.5), -20.0), -3.0)
    eff = math.log2(1 + 10 ** (sinr / 10))
    dl = max(100 * eff * 0.55 * rng.uniform(0.8, 1.0), 0.0)
    ul = dl * 0.35
    rtt = 7.0 + max(0.0, 25.0 - sinr) * 0.6 + rng.expovariate(1 / 2.0)
    loss = min(max(0.0, (5.0 - sinr) * 0.3 + rng.gauss(0, 0.1)), 100.0)
    return {
        "rsrp_dbm": round(rsrp, 1),
        "rsrq_db": round(rsrq, 1),
        "sinr_db": round(sinr, 1),
        "dl_mbps": round(dl, 1),
        "ul_mbps": round(ul, 1),
        "rtt_ms": round(rtt, 1),
        "jitter_ms": round(rng.expovariate(1 / 1.5), 2),
        "loss_pct": round(loss, 2),
        "cell_id": site.cell_id,
        "pci": site.pci,
        "band": "n79",
        "lat": round(lat, 7),
        "lon": round(lon, 7),
    }


def nearest_site(lat: float, lon: float, sites: tuple[Site, ...] = SITES) -> Site:
    """The site a phone at (lat, lon) would be served by: the closest one."""
    return min(sites, key=lambda s: distance_m(lat, lon, s.lat, s.lon))


def _radio(
    site: Site, device: str, t: datetime, lat: float, lon: float, rng: random.Random
) -> SimMessage:
    body = {"ts": rfc3339(t), **radio_sample(site, lat, lon, rng)}
    return SimMessage(t, f"maebashi/5g/{site.site_id}/{device}/radio", dumps(body), "radio")


def phone_on_bus(
    bus: Iterator[SimMessage], device: str, every_s: float, rng: random.Random
) -> Iterator[SimMessage]:
    """Pass a bus's messages through, adding the radio reports of a phone riding it."""
    next_at: datetime | None = None
    for m in bus:
        yield m
        if m.kind != "telemetry" or (next_at is not None and m.ts < next_at):
            continue
        body = json.loads(m.payload)
        site = nearest_site(body["lat"], body["lon"])
        yield _radio(site, device, m.ts, body["lat"], body["lon"], rng)
        next_at = m.ts + timedelta(seconds=every_s)


def fixed_phone(
    site: Site,
    device: str,
    start: datetime,
    every_s: float,
    rng: random.Random,
    until: datetime | None = None,
) -> Iterator[SimMessage]:
    """A phone at a fixed spot 50-600 m from the site's gNB (a classroom, an ambulance bay)."""
    lat, lon = offset(site.lat, site.lon, rng.uniform(0, 360), rng.uniform(50, 600))
    t = start + timedelta(seconds=rng.uniform(0, every_s))
    while until is None or t < until:
        yield _radio(site, device, t, lat, lon, rng)
        t += timedelta(seconds=every_s)


def senml_sensor(
    site: Site,
    device: str,
    start: datetime,
    every_s: float,
    rng: random.Random,
    until: datetime | None = None,
    samples: int = 6,
) -> Iterator[SimMessage]:
    """A weather sensor packing ``samples`` readings per message (bn/bt/bu, relative t)."""
    temp, hum = rng.uniform(5, 15), rng.uniform(40, 70)
    t = start + timedelta(seconds=every_s)
    step = every_s / samples
    while until is None or t < until:
        pack: list[dict[str, object]] = []
        for k in range(samples):
            rel = -round((samples - 1 - k) * step, 3)
            temp += rng.gauss(0, 0.05)
            hum = min(max(hum + rng.gauss(0, 0.2), 0), 100)
            if k == 0:
                pack.append(
                    {
                        "bn": f"urn:dev:mebuku:{device}:",
                        "bt": round(t.timestamp(), 3),
                        "bu": "Cel",
                        "bver": 10,
                        "n": "temp",
                        "t": rel,
                        "v": round(temp, 2),
                    }
                )
            else:
                pack.append({"n": "temp", "t": rel, "v": round(temp, 2)})
            pack.append({"n": "humidity", "u": "%RH", "t": rel, "v": round(hum, 1)})
        pack.append({"n": "battery", "u": "%EL", "v": round(rng.uniform(60, 100), 1)})
        yield SimMessage(t, f"maebashi/5g/{site.site_id}/{device}/senml", dumps(pack), "senml")
        t += timedelta(seconds=every_s)


PHONE_FIRMWARE = "MB5G-2.4.1"
SENSOR_FIRMWARE = "wx-1.8.0"


@dataclass(frozen=True)
class Hardware:
    """What a device's heartbeat reports about itself: its firmware, and whether it runs on
    a battery (phones) or on mains power (field sensors)."""

    firmware: str = PHONE_FIRMWARE
    battery: bool = True


PHONE = Hardware()
SENSOR = Hardware(SENSOR_FIRMWARE, battery=False)


def device_status(
    site: Site,
    device: str,
    start: datetime,
    every_s: float,
    rng: random.Random,
    until: datetime | None = None,
    *,
    hardware: Hardware = PHONE,
) -> Iterator[SimMessage]:
    """Heartbeats of one device (``.../status``): mostly ok, now and then degraded or in
    fault; the battery drains slowly and is recharged below 20 % (none when mains-powered)."""
    charge = rng.uniform(50, 100)
    t = start + timedelta(seconds=rng.uniform(0, every_s))
    while until is None or t < until:
        roll = rng.random()
        body: dict[str, object] = {
            "ts": rfc3339(t),
            "status": "fault" if roll < 0.01 else "degraded" if roll < 0.04 else "ok",
            "firmware": hardware.firmware,
        }
        if hardware.battery:
            charge = 100.0 if charge < 20 else charge - rng.uniform(0, 0.5)
            body["battery_pct"] = round(charge, 1)
        topic = f"maebashi/5g/{site.site_id}/{device}/status"
        yield SimMessage(t, topic, dumps(body), "status")
        t += timedelta(seconds=every_s)
