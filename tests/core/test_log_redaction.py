"""No secret reaches a log line: URL passwords, the pseudonym key, settings' passwords."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.embedded import EmbeddedMosquitto
from core.logging import (
    _PASSWORD_KV,
    _USERINFO,
    MASK,
    RedactSecrets,
    redact_text,
    redact_url,
    settings_secrets,
    setup_logging,
)
from tests.conftest import REPO_ROOT, make_settings

MQTT_PASSWORD = "Mqtt-S3cret-pw"
DB_PASSWORD = "Db-S3cret-pw"
KEY = "pseudonym-key-for-the-redaction-test-0123456789"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mqtt://sim:pa55word@broker:1883", "mqtt://sim:***@broker:1883"),
        ("mqtts://u:p%40ss@broker", "mqtts://u:***@broker"),
        (
            "postgresql://app:pw@db:5432/mebuku?sslmode=require",
            "postgresql://app:***@db:5432/mebuku?sslmode=require",
        ),
        ("postgresql://db/mebuku?user=a&password=pw", "postgresql://db/mebuku?user=a&password=***"),
        ("postgresql://postgres@127.0.0.1:5432/x", "postgresql://postgres@127.0.0.1:5432/x"),
        ("mqtt://127.0.0.1:1883", "mqtt://127.0.0.1:1883"),
        ("mqtt://u:@h:1", "mqtt://u:***@h:1"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_finds_urls_and_keywords_in_prose() -> None:
    text = "failed: postgresql://app:hunter22@db/x and host=db password='a b' dbname=x"
    clean = redact_text(text)
    assert "hunter22" not in clean and "'a b'" not in clean
    assert "postgresql://app:***@db/x" in clean and "dbname=x" in clean


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger as setup_logging leaves it, writing into a buffer."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    settings = make_settings(
        f"postgresql://app:{DB_PASSWORD}@db/mebuku",
        f"mqtt://ingest:{MQTT_PASSWORD}@broker:1883",
    ).model_copy(update={"pseudonym_key": None})
    buf = io.StringIO()
    old_stderr = sys.stderr
    sys.stderr = buf
    try:
        setup_logging("DEBUG", "json", [*settings_secrets(settings), KEY])
    finally:
        sys.stderr = old_stderr
    yield buf
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@given(st.text(alphabet="ab:/@=%_ pPaAsSwWoOrRdD.-1", max_size=60))
@settings(max_examples=500, deadline=None)
def test_redact_text_masks_as_both_patterns_do(text: str) -> None:
    """Skipping a pattern when its literal ("@", "=") is absent changes no line."""
    both = _PASSWORD_KV.sub(rf"\g<head>{MASK}", _USERINFO.sub(rf"\g<head>{MASK}@", text))
    assert redact_text(text) == both


def test_safety_net_masks_every_record(captured: io.StringIO) -> None:
    log = logging.getLogger("mebuku.test")
    log.info("connecting to %s", f"mqtt://ingest:{MQTT_PASSWORD}@broker:1883")
    log.warning("key is %s", KEY)
    log.error("db password %s leaked into a message", DB_PASSWORD)
    try:
        raise RuntimeError(f"cannot reach postgresql://app:{DB_PASSWORD}@db/mebuku")
    except RuntimeError:
        log.exception("startup failed")
    out = captured.getvalue()
    for secret in (MQTT_PASSWORD, DB_PASSWORD, KEY):
        assert secret not in out
    assert "mqtt://ingest:***@broker:1883" in out
    assert "startup failed" in out and "RuntimeError" in out


def test_short_values_are_not_treated_as_secrets() -> None:
    f = RedactSecrets(["ab", "abcdefgh"])
    assert f.secrets == {"abcdefgh"}


def test_settings_secrets_collects_keys_and_url_passwords() -> None:
    s = make_settings(f"postgresql://a:{DB_PASSWORD}@db/x", f"mqtt://u:{MQTT_PASSWORD}@b:1883")
    found = settings_secrets(s)
    assert DB_PASSWORD in found and MQTT_PASSWORD in found
    assert s.pseudonym_key is not None and s.pseudonym_key.get_secret_value() in found


def _env(db_url: str, mqtt_broker: EmbeddedMosquitto) -> dict[str, str]:
    db = db_url.replace("@", f":{DB_PASSWORD}@", 1)  # trust auth: the password is not checked
    mqtt = f"mqtt://svc:{MQTT_PASSWORD}@127.0.0.1:{mqtt_broker.port}"
    return {
        **os.environ,
        "MEBUKU_DATABASE_URL": db,
        "MEBUKU_MQTT_URL": mqtt,
        "MEBUKU_PSEUDONYM_KEY": KEY,
        "MEBUKU_LOG_LEVEL": "DEBUG",
        "MEBUKU_LANG": "ja",  # the CLI's default, whatever the machine's locale
    }


def _assert_clean(output: str) -> None:
    for secret in (MQTT_PASSWORD, DB_PASSWORD, KEY):
        assert secret not in output, f"{secret!r} in the log:\n{output}"


def test_simulator_logs_its_broker_without_the_password(
    db_url: str, mqtt_broker: EmbeddedMosquitto
) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.cli",
            "simulate",
            "--duration",
            "3",
            "--speed",
            "0",
            "--buses",
            "1",
            "--shuttles",
            "1",
        ],
        env=_env(db_url, mqtt_broker),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    assert f"mqtt://svc:***@127.0.0.1:{mqtt_broker.port}" in out.stderr  # it did log the URL
    assert "件のメッセージを" in out.stderr and "秒で送信しました" in out.stderr  # Japanese default
    _assert_clean(out.stdout + out.stderr)


def test_ingestor_logs_carry_no_secret(db_url: str, mqtt_broker: EmbeddedMosquitto) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core.cli",
            "ingest",
            "--metrics-port",
            "0",
            "--client-id",
            "redaction-test",
            "--topic",
            "mebuku-redaction-test/#",
        ],
        env=_env(db_url, mqtt_broker),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    connected = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "として接続しました" in line:  # the worker's "connected to ... as ..." line
                connected.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert connected.wait(60), "".join(lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        reader.join(10)
    _assert_clean("".join(lines))


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("MEBUKU_PSEUDONYM_KEY", "too-short-secret-value", "at least 32 characters"),
        ("MEBUKU_API_TRUSTED_PROXIES", '["caddy"]', "'caddy' is not an IP address or CIDR"),
        ("MEBUKU_API_TRUSTED_PROXIES", "10.0.0.1", "a list setting is JSON"),
    ],
)
def test_an_invalid_setting_is_one_line_without_its_value(name: str, value: str, says: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEBUKU_")}
    out = subprocess.run(
        [sys.executable, "-m", "core.cli", "db", "status"],
        env={**env, name: value, "MEBUKU_LANG": "en"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in out.stderr
    if name == "MEBUKU_PSEUDONYM_KEY":
        assert value not in out.stderr
