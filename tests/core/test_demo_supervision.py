"""`mebuku demo` as one supervised unit, run as a real process with every port chosen free.

A module fixture runs the demo once on a fresh state folder (initdb, migrations, GTFS
import, trials, API keys); each test then runs it on a copy of that folder, so only the
services start. Every test stops whatever it started, also when it fails: the demo's
process group, the children it recorded and the servers in its state folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.demo import stop_leftovers
from core.embedded import free_port, pid_alive, server_dir
from tests.conftest import REPO_ROOT
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

READY_S = 240  # generous: the test machine is shared


class Demo:
    """One `mebuku demo` process on a state folder, with the ports of ``ports``."""

    def __init__(self, state: Path, ports: dict[str, int], **env: str) -> None:
        self.state = state
        self.log = state.parent / f"{state.name}-demo-{len(list(state.parent.glob('*.log')))}.log"
        args = []
        for option, port in ports.items():
            args += [f"--{option}", str(port)]
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MEBUKU_")}
        # Japanese, the CLI's default, whatever the machine's locale (MEBUKU_LANG wins).
        self.env = {
            **clean,
            "PYTHONPATH": str(REPO_ROOT),
            "MEBUKU_STATE_DIR": str(state),
            "MEBUKU_LANG": "ja",
            **env,
        }
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "core.cli", "demo", *args],
                env=self.env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=state.parent,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def info(self) -> dict[str, object]:
        with contextlib.suppress(OSError, ValueError):
            return dict(json.loads((self.state / "demo.json").read_text()))
        return {}

    def children(self) -> dict[str, int]:
        children = self.info().get("children")
        return {str(k): int(v) for k, v in children.items()} if isinstance(children, dict) else {}

    def wait_ready(self, timeout: float = READY_S) -> dict[str, object]:

        def ready() -> dict[str, object] | None:
            info = self.info()
            if info.get("ready") and info.get("pid") == self.proc.pid:
                return info
            if self.proc.poll() is not None:
                pytest.fail(f"demo exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            return None

        info = wait_until(ready, timeout, every=0.5)
        if info is None:
            pytest.fail(f"demo not ready within {timeout} s:\n{self.output()[-3000:]}")
        return info

    def server_pids(self) -> list[int]:
        pids = []
        files = ("postgres/data/postmaster.pid", "mosquitto/mosquitto.pid")
        for f in (self.state / name for name in files):
            with contextlib.suppress(OSError, ValueError, IndexError):
                pids.append(int(f.read_text().split()[0]))
        return pids

    def stop(self, sig: signal.Signals, timeout: float = 90) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def cleanup(self) -> None:
        """Kill whatever is left (used when a test failed half-way)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        with contextlib.suppress(Exception):
            stop_leftovers(self.state)


def processes_using(state: Path) -> list[str]:
    """Every process whose command line or environment names the state folder."""
    found = []
    needle = str(state).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmd = (proc / "cmdline").read_bytes()
            env = (proc / "environ").read_bytes()
            named = needle in cmd or needle + b"\0" in env or env.endswith(needle)
            if named and pid_alive(int(proc.name)):
                found.append(proc.name + ": " + cmd.replace(b"\0", b" ").decode(errors="replace"))
    return found


def assert_nothing_left(demo: Demo, pids: list[int]) -> None:
    alive = [p for p in pids if pid_alive(p)]
    assert not alive, f"still running: {alive}"
    assert processes_using(demo.state) == []
    assert not (demo.state / "postgres/data/postmaster.pid").exists()
    assert not (demo.state / "demo.env").exists() and not (demo.state / "demo.json").exists()


def free_ports() -> dict[str, int]:
    ports: set[int] = set()
    while len(ports) < 5:
        ports.add(free_port())
    names = ["api-port", "metrics-port", "mobility-metrics-port", "postgres-port", "mqtt-port"]
    return dict(zip(names, sorted(ports), strict=True))


@contextlib.contextmanager
def running(state: Path, ports: dict[str, int] | None = None, **env: str) -> Iterator[Demo]:
    demo = Demo(state, free_ports() if ports is None else ports, **env)
    try:
        yield demo
    finally:
        demo.cleanup()


@pytest.fixture(scope="module")
def seeded() -> Iterator[Path]:
    """A state folder the demo has set up once (database, feed, trials, keys). In a
    server_dir(): the servers run as their own users when the tests run as root."""
    root = server_dir("mebuku-demo-seed-")
    state = root / "state"
    try:
        with running(state) as demo:
            demo.wait_ready(READY_S * 2)
            assert demo.stop(signal.SIGTERM) == 0, demo.output()[-3000:]
        yield state
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def state(seeded: Path) -> Iterator[Path]:
    """A copy of the seeded state folder (owners kept: the servers' users own theirs)."""
    root = server_dir("mebuku-demo-")
    copy = root / "state"
    try:
        subprocess.run(["cp", "-a", str(seeded), str(copy)], check=True)
        yield copy
    finally:
        shutil.rmtree(root, ignore_errors=True)


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as r:
        return int(r.status)


def test_sigterm_stops_every_child_and_server(state: Path) -> None:
    with running(state) as demo:
        info = demo.wait_ready()
        ports = info["ports"]
        assert isinstance(ports, dict)
        assert get(f"http://127.0.0.1:{ports['api']}/readyz") == 200
        pids = [demo.proc.pid, *demo.children().values(), *demo.server_pids()]
        assert len(pids) == 1 + 4 + 2

        # Next to the running demo, other commands find its private servers.
        env = {k: v for k, v in demo.env.items() if k != "MEBUKU_STATE_DIR"}
        out = subprocess.run(
            [sys.executable, "-m", "core.cli", "gtfs", "status"],
            env={**env, "MEBUKU_STATE_DIR": str(state)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert "gunmachuo" in out.stdout

        assert demo.stop(signal.SIGTERM) == 0
        assert_nothing_left(demo, pids)


def test_busy_usual_ports_are_replaced_by_free_ones(state: Path) -> None:
    held: list[socket.socket] = []
    try:
        for port in (8000, 9108, 9109):  # the usual API and metrics ports
            s = socket.socket()
            with contextlib.suppress(OSError):  # taken already: busy all the same
                s.bind(("127.0.0.1", port))
                s.listen()
            held.append(s)
        ports = free_ports()
        only_servers = {k: v for k, v in ports.items() if k in ("postgres-port", "mqtt-port")}
        with running(state, only_servers) as demo:
            info = demo.wait_ready()
            chosen = info["ports"]
            assert isinstance(chosen, dict)
            assert {chosen["api"], chosen["metrics"], chosen["mobility_metrics"]}.isdisjoint(
                {8000, 9108, 9109}
            )
            assert get(f"http://127.0.0.1:{chosen['api']}/readyz") == 200
            assert get(f"http://127.0.0.1:{chosen['mobility_metrics']}/metrics") == 200
            out = demo.output()
            for usual, name in ((8000, "api"), (9108, "metrics"), (9109, "mobility_metrics")):
                assert (
                    f"ポート {usual}（{name}）は使用中です：代わりに {chosen[name]} を使います"
                    in out
                )
            pids = [demo.proc.pid, *demo.children().values(), *demo.server_pids()]
            assert demo.stop(signal.SIGINT) == 0
            assert_nothing_left(demo, pids)
    finally:
        for s in held:
            s.close()


def test_a_killed_child_is_restarted(state: Path) -> None:
    with running(state) as demo:
        info = demo.wait_ready()
        ports = info["ports"]
        assert isinstance(ports, dict)
        before = demo.children()
        os.kill(before["mobility"], signal.SIGKILL)

        def restarted() -> dict[str, int] | None:
            assert demo.proc.poll() is None, demo.output()[-3000:]
            now = demo.children()
            if now.get("mobility") not in (None, before["mobility"]) and pid_alive(now["mobility"]):
                with contextlib.suppress(OSError):
                    if get(f"http://127.0.0.1:{ports['mobility_metrics']}/metrics") == 200:
                        return now
            return None

        now = wait_until(restarted, 90, every=0.5)
        assert now is not None, demo.output()[-3000:]
        assert "mobility が終了しました（終了ステータス -9）：" in demo.output()
        assert {k: v for k, v in now.items() if k != "mobility"} == {
            k: v for k, v in before.items() if k != "mobility"
        }
        pids = [demo.proc.pid, *before.values(), *now.values(), *demo.server_pids()]
        assert demo.stop(signal.SIGHUP) == 0
        assert_nothing_left(demo, pids)


def test_a_child_that_keeps_failing_stops_the_demo_with_its_last_lines(state: Path) -> None:
    # The API refuses to start on a road network file that does not exist.
    with running(state, MEBUKU_ROAD_GRAPH_PATH=str(state / "missing.osm")) as demo:
        assert demo.proc.wait(READY_S) == 1
        out = demo.output()
        assert "api が失敗を繰り返しています（60 秒以内に 5 回終了、最後の終了コード 2）" in out
        assert "api の最後の出力：" in out
        assert f"MEBUKU_ROAD_GRAPH_PATH：{state / 'missing.osm'} がありません" in out
        assert "Mebuku デモ" not in out  # no table of what runs where
        assert processes_using(state) == []


def test_servers_left_by_a_killed_demo_are_stopped_by_the_next(state: Path) -> None:
    first = Demo(state, free_ports())
    try:
        first.wait_ready()
        children = list(first.children().values())
        servers = first.server_pids()
        os.kill(first.proc.pid, signal.SIGKILL)  # no chance to clean up
        first.proc.wait()
        # children die with their parent
        assert wait_until(lambda: not any(pid_alive(p) for p in children), 30, every=0.2), (
            "children outlived the killed demo"
        )
        assert len(servers) == 2 and all(pid_alive(p) for p in servers)  # left behind

        with running(state) as second:
            second.wait_ready()
            assert not any(pid_alive(p) for p in servers)
            out = second.output()
            assert f"前回のデモが残した PostgreSQL（pid {servers[0]}）を停止しました" in out
            assert f"前回のデモが残した Mosquitto（pid {servers[1]}）を停止しました" in out
            pids = [second.proc.pid, *second.children().values(), *second.server_pids()]
            assert second.stop(signal.SIGTERM) == 0
            assert_nothing_left(second, [*pids, *servers, *children])
    finally:
        first.cleanup()
