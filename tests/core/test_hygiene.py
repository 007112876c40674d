"""Tests do not leak servers: a failed start kills what it started, and a test session
fails (and cleans up) when a server it started is still running at its end."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.embedded import EmbeddedMosquitto, EmbeddedServerError, pid_alive, server_dir
from tests.conftest import REPO_ROOT


def test_a_server_whose_start_fails_is_not_left_running() -> None:
    root = server_dir("mebuku-hygiene-")
    broker = EmbeddedMosquitto(root)
    try:
        with pytest.raises(EmbeddedServerError, match="did not listen"):
            broker.start(timeout=0)  # gives up before the broker can listen
        assert broker.proc is not None
        assert not pid_alive(broker.proc.pid)
    finally:
        broker.kill()
        shutil.rmtree(root, ignore_errors=True)


LEAKY_TEST = """
from pathlib import Path

from core.embedded import EmbeddedMosquitto, server_dir


def test_leaks_a_broker():
    root = server_dir("mebuku-leak-")
    Path("leaked.root").write_text(str(root))
    broker = EmbeddedMosquitto(root)
    broker.start()
    Path("leaked.pid").write_text(str(broker.proc.pid))


def test_later():
    pass
"""


@pytest.mark.parametrize("xdist", [[], ["-p", "xdist", "-n", "1"]], ids=["plain", "xdist"])
def test_the_session_fails_when_a_server_is_left_running(tmp_path: Path, xdist: list[str]) -> None:
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_runtest_teardown, pytest_sessionfinish  # noqa\n"
    )
    (tmp_path / "test_leaky.py").write_text(LEAKY_TEST)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *xdist]
    try:
        out = subprocess.run(
            [*argv, "test_leaky.py"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
        )
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree((tmp_path / "leaked.root").read_text(), ignore_errors=True)
    report = out.stdout + out.stderr
    assert out.returncode == 1, report
    assert "servers left running by the tests (now killed): Mosquitto on port" in report
    assert "2 passed, 1 error" in report
    assert not pid_alive(int((tmp_path / "leaked.pid").read_text()))
