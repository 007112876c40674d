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


def test_help_speaks_the_locale() -> None:
    """Japanese unless the locale (or MEBUKU_LANG) says English."""
    ja = mebuku("db", "--help", env={"MEBUKU_LANG": "", "LC_ALL": "", "LANG": "C.UTF-8"})
    assert ja.returncode == 0 and "未適用のマイグレーションを適用します" in ja.stdout
    assert "オプション" in ja.stdout
    en = mebuku("db", "--help", env={"MEBUKU_LANG": "", "LC_ALL": "en_US.UTF-8"})
    assert "Apply pending migrations" in en.stdout and "未適用" not in en.stdout
    assert "Apply pending" in mebuku("db", "--help", env={"MEBUKU_LANG": "en"}).stdout


def test_db_migrate_and_status_from_the_command_line(empty_db_url: str) -> None:
    env = {"MEBUKU_DATABASE_URL": empty_db_url, "MEBUKU_LANG": "ja"}
    first = mebuku("db", "migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "件のマイグレーションを適用しました" in first.stderr
    second = mebuku("db", "migrate", env=env)
    # The second run applies nothing (the first printed one "適用しました" line per file).
    out = second.stdout + second.stderr
    assert second.returncode == 0 and "適用しました" not in out
    assert "最新の状態です" in second.stderr
    status = mebuku("db", "status", env={**env, "MEBUKU_LANG": "en"})
    assert status.returncode == 0
    assert "0 pending" in status.stderr and "core/0002_timeseries_tables.sql" in status.stdout
    assert "applied at" in status.stdout


def test_missing_database_url_is_a_clear_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEBUKU_")}
    out = subprocess.run(
        [sys.executable, "-m", "core.cli", "db", "status"],
        capture_output=True,
        text=True,
        env={**env, "MEBUKU_LANG": "en"},
        cwd="/",
        timeout=60,
    )
    assert out.returncode != 0
    assert "MEBUKU_DATABASE_URL is not set" in out.stderr
    ja = subprocess.run(
        [sys.executable, "-m", "core.cli", "db", "status"],
        capture_output=True,
        text=True,
        env={**env, "MEBUKU_LANG": "ja"},
        cwd="/",
        timeout=60,
    )
    assert ja.returncode == 2 and "Traceback" not in ja.stderr
    assert ja.stderr.startswith("mebuku: MEBUKU_DATABASE_URL が設定されていません")


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
