"""The `mebuku` command and the deployment files, as an operator would use them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, TEST_PSEUDONYM_KEY


def mebuku(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "MEBUKU_PSEUDONYM_KEY": TEST_PSEUDONYM_KEY, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=REPO_ROOT,
        timeout=120,
    )


def test_help_lists_the_groups() -> None:
    out = mebuku("--help")
    assert out.returncode == 0, out.stderr
    for group in ("db", "demo"):
        assert group in out.stdout
    sub = mebuku("db", "--help")
    assert sub.returncode == 0 and "migrate" in sub.stdout and "status" in sub.stdout


def test_db_migrate_and_status_from_the_command_line(empty_db_url: str) -> None:
    env = {"MEBUKU_DATABASE_URL": empty_db_url}
    first = mebuku("db", "migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stderr
    second = mebuku("db", "migrate", env=env)
    # The second run applies nothing ("  applied <file>" lines are what the first printed).
    assert second.returncode == 0 and "applied" not in second.stdout + second.stderr
    assert "0 migration" not in second.stderr and "up to date" in second.stderr
    status = mebuku("db", "status", env=env)
    assert status.returncode == 0
    assert "0 pending" in status.stderr and "core/0002_timeseries_tables.sql" in status.stdout


def test_missing_database_url_is_a_clear_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEBUKU_")}
    out = subprocess.run(
        [sys.executable, "-m", "core.cli", "db", "status"],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=60,
    )
    assert out.returncode != 0
    assert "MEBUKU_DATABASE_URL is not set" in out.stderr


def _compose() -> list[str] | None:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    if (legacy := shutil.which("docker-compose")) is not None:
        return [legacy]
    return None


def test_docker_compose_config_is_valid() -> None:
    compose = _compose()
    if compose is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    out = subprocess.run(
        [*compose, "--env-file", "deploy/env.example", "config", "-q"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


def test_compose_refuses_to_start_without_secrets(tmp_path) -> None:
    compose = _compose()
    if compose is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    env = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_PASSWORD",)}
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    out = subprocess.run(
        [*compose, "--env-file", str(empty_env), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=60,
    )
    assert out.returncode != 0 and "POSTGRES_PASSWORD" in out.stderr
