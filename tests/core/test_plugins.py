"""One discovery mechanism (core/plugins.py): a declared domain that fails to import stops
the program with its error instead of vanishing.

A broken domain is simulated with a real temporary distribution: a ``*.dist-info`` folder
whose entry_points.txt declares it, on the path of a real ``mebuku`` process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import plugins
from tests.conftest import REPO_ROOT, TEST_PSEUDONYM_KEY


def _distribution(root: Path, group: str, entry: str, module_source: str | None) -> None:
    """A distribution ``mebuku-broken-domain`` declaring ``entry`` in ``group``."""
    info = root / "mebuku_broken_domain-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mebuku-broken-domain\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(f"[{group}]\n{entry}\n")
    if module_source is not None:
        pkg = root / "mebuku_broken_domain"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        (pkg / "cli.py").write_text(module_source)


def _mebuku(extra_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MEBUKU_PSEUDONYM_KEY": TEST_PSEUDONYM_KEY,
        "PYTHONPATH": os.pathsep.join([str(extra_path), str(REPO_ROOT)]),
    }
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("import mebuku_missing_dependency\n", "mebuku_missing_dependency"),  # missing dependency
        ("raise RuntimeError('bug at import time')\n", "bug at import time"),  # a bug
        (None, "No module named 'mebuku_broken_domain'"),  # declared but not installed
    ],
    ids=["missing-dependency", "error-at-import", "module-absent"],
)
def test_a_broken_cli_group_stops_mebuku_naming_its_module(
    tmp_path: Path, source: str | None, error: str
) -> None:
    _distribution(tmp_path, "mebuku.cli", "broken = mebuku_broken_domain.cli:app", source)
    out = _mebuku(tmp_path, "--help")
    assert out.returncode != 0
    assert "mebuku_broken_domain.cli" in out.stderr
    assert error in out.stderr
    assert "Usage" not in out.stdout  # it stopped; it did not run without the group


def test_the_same_path_without_the_broken_entry_runs(tmp_path: Path) -> None:
    # The harness itself is sound: an empty extra path leaves `mebuku --help` working.
    out = _mebuku(tmp_path, "--help")
    assert out.returncode == 0, out.stderr
    assert "fiveg" in out.stdout and "grafana" in out.stdout


@pytest.mark.parametrize("group", ["mebuku.dashboards", "mebuku.cli"])
def test_load_raises_for_every_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group: str
) -> None:
    _distribution(tmp_path, group, "zz_broken = mebuku_broken_domain.cli:thing", "import nope_x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(plugins.PluginError, match=r"zz_broken.*mebuku_broken_domain\.cli.*nope_x"):
        plugins.load(group)


def test_dashboards_and_routers_come_from_entry_points() -> None:
    assert plugins.modules("mebuku.routers") == [
        "mobility.http",
        "mobility.fares.http",
        "fiveg.http",
        "opendata.http",
        "portal.http",
    ]
    loaded = {p.module for p in plugins.load("mebuku.dashboards")}
    assert {"ingest.dashboard", "fiveg.dashboard", "api.grafana.platform_dashboard"} <= loaded


def test_a_broken_router_module_stops_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.app import load_router

    pkg = tmp_path / "mebuku_broken_routes"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "http.py").write_text("import mebuku_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        plugins.PluginError, match=r"mebuku_broken_routes\.http.*mebuku_missing_dep"
    ):
        load_router("mebuku_broken_routes.http")
    with pytest.raises(plugins.PluginError, match="mebuku_no_such_routes"):
        load_router("mebuku_no_such_routes.http")
