"""A non-editable wheel install works away from the checkout: the data the code reads at run
time (GTFS feed, town polygons, fare policies, demo trials, migrations) ships in the wheel
and is found with importlib.resources, not by paths relative to the repository.

The wheel is installed with ``--no-deps`` into a fresh venv whose only other packages are
this project's dependencies (the test venv's site-packages, added by a .pth line; .pth files
there are not processed, so the editable install of the checkout stays invisible).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from core.embedded import EmbeddedMosquitto
from tests.conftest import REPO_ROOT, TEST_PSEUDONYM_KEY

pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MEBUKU_"))}
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**clean, "MEBUKU_PSEUDONYM_KEY": TEST_PSEUDONYM_KEY, **env},
        timeout=300,
    )


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bin/ folder of a fresh venv with the project installed from its wheel."""
    root = tmp_path_factory.mktemp("wheel")
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root), str(REPO_ROOT)],
        cwd=root,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = root.glob("mebuku-*.whl")
    env_dir = root / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], cwd=root)
    assert made.returncode == 0, made.stderr
    py = env_dir / "bin" / "python"
    ask = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = _run([str(py), "-c", ask], root)
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib.stdout.strip()) / "mebuku-deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    installed = _run(
        [str(py), "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q", str(wheel)],
        cwd=root,
    )
    assert installed.returncode == 0, installed.stderr
    yield env_dir / "bin"


def test_the_installed_package_is_not_the_checkout(venv: Path, tmp_path: Path) -> None:
    out = _run(
        [str(venv / "python"), "-c", "import core, mobility.fares; print(core.__file__)"], tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).is_relative_to(venv.parent)
    helped = _run([str(venv / "mebuku"), "--help"], tmp_path)
    assert helped.returncode == 0, helped.stderr
    for group in ("db", "demo", "gtfs", "simulate", "fiveg", "fares", "api"):
        assert group in helped.stdout


def test_data_commands_run_from_an_installed_wheel(
    venv: Path, tmp_path: Path, empty_db_url: str, mqtt_broker: EmbeddedMosquitto
) -> None:
    db = {"MEBUKU_DATABASE_URL": empty_db_url}
    migrated = _run([str(venv / "mebuku"), "db", "migrate"], tmp_path, **db)
    assert migrated.returncode == 0, migrated.stderr

    where = "from core.resources import default_gtfs; print(default_gtfs())"
    feed = Path(_run([str(venv / "python"), "-c", where], tmp_path).stdout.strip())
    assert feed.is_file() and feed.is_relative_to(venv.parent)
    imported = _run([str(venv / "mebuku"), "gtfs", "import", str(feed)], tmp_path, **db)
    assert imported.returncode == 0, imported.stderr
    with psycopg.connect(empty_db_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM gtfs_trips WHERE feed_version = gtfs_current_version()"
        ).fetchone()
    assert row is not None and row[0] == 267  # the feed's trips (core/data/README.md)

    policies = _run([str(venv / "mebuku"), "fares", "policies"], tmp_path)
    assert policies.returncode == 0, policies.stderr
    assert "mytaku-2022-04" in policies.stdout and "bus-2024-12" in policies.stdout

    # The simulator reads the bundled feed and the town polygons (city routes).
    simulated = _run(
        [str(venv / "mebuku"), "simulate", "--duration", "5", "--speed", "0"],
        tmp_path,
        MEBUKU_MQTT_URL=mqtt_broker.url,
        MEBUKU_LANG="ja",
    )
    assert simulated.returncode == 0, simulated.stderr
    published = re.search(r"(\d+) 件のメッセージを [\d.]+ 秒で送信しました", simulated.stderr)
    assert published is not None and int(published.group(1)) > 0, simulated.stderr
