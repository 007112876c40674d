"""Commands that need an optional dependency group say which extra to install, in one line,
when it is missing (the group is hidden from the interpreter, as if not installed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.extras import MissingExtraError
from tests.conftest import REPO_ROOT, TEST_PSEUDONYM_KEY


def mebuku_without(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``mebuku ARGS`` in a process where importing ``module`` fails."""
    code = (
        f"import sys; sys.modules[{module!r}] = None; sys.argv = ['mebuku', *sys.argv[1:]]; "
        "from core.cli import main; main()"
    )
    env = {**os.environ, "MEBUKU_PSEUDONYM_KEY": TEST_PSEUDONYM_KEY}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120,
    )  # fmt: skip


def _one_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err  # no traceback
    return lines[0]


def test_grafana_push_names_the_grafana_extra() -> None:
    out = mebuku_without("grafana_client", "grafana", "check", "--url", "http://127.0.0.1:9",
                         "--token", "t")  # fmt: skip
    assert out.returncode == 1
    assert "pip install 'mebuku[grafana]'" in _one_line(out.stderr)


def test_fiveg_report_names_the_report_extra() -> None:
    out = mebuku_without("matplotlib", "fiveg", "report", "bus-supervision-2026")
    assert out.returncode == 1
    line = _one_line(out.stderr)
    assert "pip install 'mebuku[report]'" in line and "matplotlib" in line


def test_road_graph_from_an_osm_file_names_the_road_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from mobility import network

    monkeypatch.setitem(sys.modules, "osmnx", None)
    graph = tmp_path / "maebashi.graphml"
    graph.write_text("<graphml/>")
    with pytest.raises(MissingExtraError, match=r"pip install 'mebuku\[road\]'"):
        network.load_road_graph(graph)
