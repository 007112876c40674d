"""Misconfiguration is one line per problem and exit status 2, never a traceback.

Every test runs the real `mebuku` command as a subprocess in an empty folder (no ``.env``)
with no ``MEBUKU_`` variable but the ones it sets, and compares stderr line by line. The
lines are in the language of the process: Japanese by default (a neutral ``C.UTF-8``
locale here), English with ``MEBUKU_LANG=en``; the variable's name is verbatim in both.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.embedded import free_port
from core.settings import write_demo_env
from tests.conftest import REPO_ROOT, TEST_PSEUDONYM_KEY

NO_DB = (
    "mebuku: MEBUKU_DATABASE_URL が設定されていません：PostgreSQL の URL"
    "（例：postgresql://user@host:5432/mebuku）を設定してください"
    "（または `mebuku demo` を実行してください）"
)
NO_MQTT = (
    "mebuku: MEBUKU_MQTT_URL が設定されていません：MQTTブローカーのアドレス"
    "（例：mqtt://host:1883）を設定してください（または `mebuku demo` を実行してください）"
)
NO_KEY = (
    "mebuku: MEBUKU_PSEUDONYM_KEY が設定されていません：32文字以上の秘密の値を設定してください"
    "（または `mebuku demo` を実行してください）"
)
NO_DB_EN = (
    "mebuku: MEBUKU_DATABASE_URL is not set: set it to a PostgreSQL URL such as "
    "postgresql://user@host:5432/mebuku (or run `mebuku demo`)"
)
NO_MQTT_EN = (
    "mebuku: MEBUKU_MQTT_URL is not set: set it to the broker's address such as "
    "mqtt://host:1883 (or run `mebuku demo`)"
)
LOCALE_VARS = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def mebuku(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith("MEBUKU_") and k not in LOCALE_VARS
    }
    clean["LANG"] = "C.UTF-8"  # says nothing about the reader: Japanese unless MEBUKU_LANG
    clean["PYTHONPATH"] = str(REPO_ROOT)
    clean["MEBUKU_STATE_DIR"] = str(cwd / "state")
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        cwd=cwd,
        timeout=60,
    )


def assert_config_error(out: subprocess.CompletedProcess[str], *lines: str) -> None:
    assert "Traceback" not in out.stderr, out.stderr
    assert out.stderr.splitlines() == list(lines)
    assert out.returncode == 2


@pytest.fixture
def here(tmp_path: Path) -> Path:
    return tmp_path


def test_a_missing_database_url_is_one_line(here: Path) -> None:
    assert_config_error(mebuku("gtfs", "status", cwd=here), NO_DB)
    assert_config_error(mebuku("db", "migrate", cwd=here), NO_DB)


def test_every_missing_setting_of_a_service_is_named_at_once(here: Path) -> None:
    assert_config_error(mebuku("ingest", cwd=here), NO_DB, NO_MQTT)


def test_the_lines_are_english_when_the_process_says_so(here: Path) -> None:
    assert_config_error(mebuku("ingest", cwd=here, MEBUKU_LANG="en"), NO_DB_EN, NO_MQTT_EN)
    out = mebuku("ingest", cwd=here, LC_ALL="en_US.UTF-8")
    assert_config_error(out, NO_DB_EN, NO_MQTT_EN)


def test_the_simulator_without_a_broker_is_one_line(here: Path) -> None:
    assert_config_error(mebuku("simulate", cwd=here), NO_MQTT)
    assert_config_error(
        mebuku("simulate", "--duration", "5", cwd=here, MEBUKU_MQTT_URL=""), NO_MQTT
    )


def test_an_empty_variable_counts_as_unset(here: Path) -> None:
    out = mebuku("ingest", cwd=here, MEBUKU_MQTT_URL="", MEBUKU_DATABASE_URL="")
    assert_config_error(out, NO_DB, NO_MQTT)
    # An empty optional setting is simply "not set", not an error.
    out = mebuku("gtfs", "status", cwd=here, MEBUKU_MQTT_URL="", MEBUKU_API_PORT="")
    assert_config_error(out, NO_DB)


def test_invalid_values_name_the_variable_and_hide_secrets(here: Path) -> None:
    out = mebuku(
        "db",
        "status",
        cwd=here,
        MEBUKU_DATABASE_URL="http://user:hunter2-secret@db/mebuku",
        MEBUKU_MQTT_URL="mqtt://:1883",
        MEBUKU_PSEUDONYM_KEY="too-short",
        MEBUKU_API_PORT="eighty",
        MEBUKU_METRICS_PORT="70000",
        MEBUKU_API_CORS_ORIGINS="https://a.example",
    )
    assert_config_error(
        out,
        "mebuku: MEBUKU_API_CORS_ORIGINS：読み取れません：一覧の設定は JSON で書いてください"
        '（例：["a", "b"]）',
    )
    bad = {
        "MEBUKU_DATABASE_URL": "http://user:hunter2-secret@db/mebuku",
        "MEBUKU_MQTT_URL": "mqtt://:1883",
        "MEBUKU_PSEUDONYM_KEY": "too-short",
        "MEBUKU_API_PORT": "eighty",
        "MEBUKU_METRICS_PORT": "70000",
        "MEBUKU_LOG_FORMAT": "xml",
    }
    out = mebuku("db", "status", cwd=here, **bad)
    assert_config_error(
        out,
        "mebuku: MEBUKU_DATABASE_URL：postgresql:// で始めてください"
        "（例：postgresql://user@host:5432/mebuku）",
        "mebuku: MEBUKU_MQTT_URL：ホスト名がありません（例：mqtt://host:1883）",
        "mebuku: MEBUKU_PSEUDONYM_KEY：32文字以上にしてください",
        "mebuku: MEBUKU_LOG_FORMAT：'json'、'text' のいずれかを指定してください（指定値：'xml'）",
        "mebuku: MEBUKU_API_PORT：整数ではありません（指定値：'eighty'）",
        "mebuku: MEBUKU_METRICS_PORT：65535 以下にしてください（指定値：'70000'）",
    )
    assert "hunter2" not in out.stderr and "too-short" not in out.stderr
    out = mebuku("db", "status", cwd=here, MEBUKU_LANG="en", **bad)
    assert_config_error(
        out,
        "mebuku: MEBUKU_DATABASE_URL: must start with postgresql:// "
        "(e.g. postgresql://user@host:5432/mebuku)",
        "mebuku: MEBUKU_MQTT_URL: has no host (e.g. mqtt://host:1883)",
        "mebuku: MEBUKU_PSEUDONYM_KEY: must be at least 32 characters",
        "mebuku: MEBUKU_LOG_FORMAT: Input should be 'json' or 'text' (got 'xml')",
        "mebuku: MEBUKU_API_PORT: Input should be a valid integer, unable to parse string "
        "as an integer (got 'eighty')",
        "mebuku: MEBUKU_METRICS_PORT: Input should be less than or equal to 65535 (got '70000')",
    )
    assert "hunter2" not in out.stderr and "too-short" not in out.stderr


def test_help_still_works_with_invalid_settings(here: Path) -> None:
    out = mebuku("db", "--help", cwd=here, MEBUKU_API_PORT="eighty")
    assert out.returncode == 0 and "migrate" in out.stdout


def _refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_the_api_refuses_to_start_without_the_pseudonym_key(here: Path) -> None:
    port = free_port()
    db = "postgresql://nobody@127.0.0.1:1/none"
    out = mebuku("api", "--port", str(port), cwd=here, MEBUKU_DATABASE_URL=db)
    assert_config_error(out, NO_KEY)
    assert _refused(port)
    out = mebuku(
        "api",
        "--port",
        str(port),
        cwd=here,
        MEBUKU_DATABASE_URL=db,
        MEBUKU_PSEUDONYM_KEY=TEST_PSEUDONYM_KEY,
        MEBUKU_JPKI_TRUST_ANCHORS=str(here / "missing-ca.pem"),
        MEBUKU_ROAD_GRAPH_PATH=str(here),
    )
    assert_config_error(
        out,
        f"mebuku: MEBUKU_JPKI_TRUST_ANCHORS：{here / 'missing-ca.pem'} がありません："
        "読み取れるファイルを設定してください",
        f"mebuku: MEBUKU_ROAD_GRAPH_PATH：{here} はファイルではありません："
        "読み取れるファイルを設定してください",
    )


@pytest.fixture
def held_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_the_demo_refuses_a_busy_port_that_was_set(here: Path, held_port: int) -> None:
    out = mebuku("demo", "--api-port", str(held_port), cwd=here)
    assert_config_error(
        out,
        f"mebuku: MEBUKU_API_PORT / --api-port：ポート {held_port} は使用中です："
        "別のポートを設定するか、そのポートを使っているものを止めてください",
    )
    out = mebuku("demo", "--api-port", str(held_port), cwd=here, MEBUKU_LANG="en")
    assert_config_error(
        out,
        f"mebuku: MEBUKU_API_PORT / --api-port: port {held_port} is in use: set another "
        "port or stop what listens there",
    )
    out = mebuku("demo", cwd=here, MEBUKU_LANG="en", MEBUKU_MOBILITY_METRICS_PORT=str(held_port))
    assert_config_error(
        out,
        f"mebuku: MEBUKU_MOBILITY_METRICS_PORT / --mobility-metrics-port: port {held_port} "
        "is in use: set another port or stop what listens there",
    )


def test_commands_find_a_running_demos_servers_in_its_state_folder(here: Path, db_url: str) -> None:
    state = here / "state"
    state.mkdir()
    env_file = state / "demo.env"
    write_demo_env(env_file, {"MEBUKU_DATABASE_URL": db_url})
    assert env_file.stat().st_mode & 0o777 == 0o600
    out = mebuku("db", "status", cwd=here, MEBUKU_LOG_LEVEL="DEBUG", MEBUKU_LANG="ja")
    assert out.returncode == 0, out.stderr
    assert f"実行中のデモの設定を使います（{env_file}）" in out.stderr
    assert "未適用 0 件" in out.stderr
    # A variable that is set wins over the demo's file.
    out = mebuku("db", "status", cwd=here, MEBUKU_DATABASE_URL="postgresql://x@127.0.0.1:1/y")
    assert out.returncode != 0 and "未適用 0 件" not in out.stderr
    # A file others can read is not trusted (it could point anywhere).
    env_file.chmod(0o644)
    assert_config_error(mebuku("db", "status", cwd=here), NO_DB)


def test_choose_ports_replaces_a_busy_usual_port_and_refuses_a_busy_set_one(
    tmp_path: Path, held_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.demo import choose_ports
    from core.settings import ConfigError, Settings

    monkeypatch.setenv("MEBUKU_LANG", "en")  # the note this test reads is the English one
    usual = Settings(_env_file=None, mobility_metrics_port=held_port)  # as if it were 9109
    ports = choose_ports(usual, set(), tmp_path)
    assert ports.mobility_metrics != held_port
    assert ports.notes == (
        f"port {held_port} (mobility_metrics) is in use: using {ports.mobility_metrics} "
        "(MEBUKU_MOBILITY_METRICS_PORT)",
    )
    assert len({ports.api, ports.metrics, ports.mobility_metrics, ports.postgres, ports.mqtt}) == 5
    # The private servers keep their ports per state folder.
    again = choose_ports(Settings(_env_file=None), set(), tmp_path)
    assert (again.postgres, again.mqtt) == (ports.postgres, ports.mqtt)
    monkeypatch.setenv("MEBUKU_LANG", "en")
    with pytest.raises(ConfigError) as e:
        choose_ports(usual, {"mobility_metrics_port"}, tmp_path)
    assert e.value.problems == [
        f"MEBUKU_MOBILITY_METRICS_PORT / --mobility-metrics-port: port {held_port} is in use: "
        "set another port or stop what listens there"
    ]


def test_a_database_that_cannot_be_reached_is_one_line(here: Path) -> None:
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    out = mebuku("db", "status", cwd=here, MEBUKU_DATABASE_URL=url)
    assert "Traceback" not in out.stderr and out.returncode == 1
    assert out.stderr.splitlines() == [
        "mebuku: データベースに接続できません（MEBUKU_DATABASE_URL）："
        "サーバーが接続を拒否しました（起動していないか、ポートが違います）"
    ]
    out = mebuku("gtfs", "status", cwd=here, MEBUKU_DATABASE_URL=url, MEBUKU_LANG="en")
    assert out.stderr.splitlines() == [
        "mebuku: the database cannot be reached (MEBUKU_DATABASE_URL): the server refused "
        "the connection (not running, or another port)"
    ]
