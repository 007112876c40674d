"""Benchmark: what the My Number screen (api/screen.py) costs per request, in-process.

Times path, query, header and body screening together for typical requests and for
bodies at the 1 MiB limit (clean, so every view is read to the end: the worst case). No
servers needed. Prints a table.

    .venv/bin/python bench/screen_bench.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from api.screen import screen_body, screen_headers, screen_target

HEADERS = [
    (b"host", b"api.mebuku.example"),
    (b"user-agent", b"taxi-meter/2.3 (maebashi-taxi-17)"),
    (b"x-api-key", b"k" * 43),
    (b"content-type", b"application/json"),
]
RIDE = json.dumps(
    {
        "record_id": "T-2026-000123",
        "vehicle_id": "maebashi-taxi-17",
        "pickup_at": "2026-11-20T10:05:00+09:00",
        "dropoff_at": "2026-11-20T10:21:00+09:00",
        "pickup": {"lon": 139.0729, "lat": 36.3837},
        "dropoff": {"lon": 139.0745, "lat": 36.3922},
        "meter_fare_yen": 1800,
        "rider_cards": ["012E4CD8A1B20A1F"],
    }
).encode()
MIB = 1_048_576
NOTE_JSON = json.dumps({"note": "運賃メーター確認済み route 11 " * (MIB // 40)})[: MIB - 2]
BIG_JSON = (NOTE_JSON.rsplit(" ", 1)[0] + '"}').encode()
BIG_ARRAY = json.dumps([[139.0729 + i * 1e-6, 36.3837, 1700000000000 + i] for i in range(20000)])
BIG_TEXT = ("route 11 fuel report 2026-11-20 10:05 ok\n" * (MIB // 42)).encode()
BIG_UTF16 = BIG_TEXT[: MIB // 2].decode().encode("utf-16")
BIG_FORM = ("note=" + "route+11+ok+" * (MIB // 12)).encode()[:MIB]


def screen(path: str, query: bytes, body: bytes, content_type: str) -> list[str]:
    return (
        screen_target(path.encode(), path, query)
        + screen_headers(HEADERS)
        + screen_body(body, content_type)
    )


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples), max(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    cases: list[tuple[str, int, Callable[[], object]]] = [
        (
            "GET /v1/operators/gunmachuo/statements/2026-10",
            0,
            lambda: screen("/v1/operators/gunmachuo/statements/2026-10", b"format=csv", b"", ""),
        ),
        (
            "POST taxi ride (JSON)",
            len(RIDE),
            lambda: screen("/v1/operators/gunmachuo/taxi-rides", b"", RIDE, "application/json"),
        ),
        (
            "1 MiB JSON note (Japanese text)",
            len(BIG_JSON),
            lambda: screen("/v1/x", b"", BIG_JSON, "application/json"),
        ),
        (
            "JSON array, 20,000 numeric rows",
            len(BIG_ARRAY),
            lambda: screen("/v1/x", b"", BIG_ARRAY.encode(), "application/json"),
        ),
        (
            "1 MiB text/plain",
            len(BIG_TEXT),
            lambda: screen("/v1/x", b"", BIG_TEXT, "text/plain"),
        ),
        (
            "0.5 MiB text as UTF-16 (all views)",
            len(BIG_UTF16),
            lambda: screen("/v1/x", b"", BIG_UTF16, "text/plain"),
        ),
        (
            "1 MiB urlencoded form",
            len(BIG_FORM),
            lambda: screen("/v1/x", b"", BIG_FORM, "application/x-www-form-urlencoded"),
        ),
    ]
    print(f"{'request':<48} {'bytes':>9} {'median ms':>10} {'max ms':>9}")
    for name, size, fn in cases:
        assert fn() == [], name  # all clean: nothing refused
        med, worst = timed(fn, args.repeat)
        print(f"{name:<48} {size:>9,} {med * 1000:>10.3f} {worst * 1000:>9.3f}")


if __name__ == "__main__":
    main()
