"""The shortest road path of a taxi ride is computed in a worker thread: while it runs, the
event loop keeps serving (here: the loop itself releases the blocked path search)."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta

import psycopg
import pytest

from core.roles import role_url
from mobility.fares import ledger
from mobility.fares.policy import load_policies
from mobility.fares.rules import JST
from tests.conftest import TEST_PSEUDONYM_KEY

STATION = (139.072877, 36.38373)
CHUO = (139.074485, 36.392176)


@pytest.mark.anyio
async def test_road_distance_runs_off_the_event_loop(db_url: str) -> None:
    async def main() -> tuple[bool, int, int, ledger.TaxiOutcome]:
        loop = asyncio.get_running_loop()
        called = asyncio.Event()
        release = threading.Event()
        seen: list[tuple[bool, int]] = []

        def slow_path(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
            loop.call_soon_threadsafe(called.set)
            # Only the event loop can release this: on the loop, it would time out.
            seen.append((release.wait(10), threading.get_ident()))
            return 20_000.0  # a long way round: 1,200 yen is far below its fare

        async def releaser() -> None:
            await called.wait()
            release.set()

        when = datetime(2025, 6, 2, 10, 0, tzinfo=JST)
        ride = ledger.TaxiRide(
            "thread-taxi", "r-1", "v-1", when, when + timedelta(minutes=8),
            *STATION, *CHUO, 1200, ("0A0B0C0D0E0F1011",),
        )  # fmt: skip
        async with await psycopg.AsyncConnection.connect(
            role_url(db_url, "api"), autocommit=True
        ) as conn:
            task = asyncio.create_task(releaser())
            out = await ledger.submit_taxi_ride(
                conn, TEST_PSEUDONYM_KEY.encode(), ride, load_policies(), slow_path
            )
            await task
        ((released, thread),) = seen
        return released, thread, threading.get_ident(), out

    released, path_thread, loop_thread, out = await main()
    assert released
    assert path_thread != loop_thread
    # The road distance was used (the straight line, about 1.2 km with detours, fits 1,200 yen).
    assert "fare-far-from-distance" in out.flags
