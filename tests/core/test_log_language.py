"""Log lines operators read are in the language of the process (issue 14), and keep their
English message id as a stable, greppable ``event`` in JSON lines."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from core import i18n
from tests.conftest import REPO_ROOT, TEST_PSEUDONYM_KEY

PACKAGES = ("api", "core", "fiveg", "ingest", "mobility", "opendata", "portal")
LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}
# A %-style conversion (what logging fills in from the call's arguments).
CONVERSION = re.compile(r"%[-#0 +]*(?:\d+|\*)?(?:\.\d+)?[sdrfiexXgG%]")


def _sources() -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted((REPO_ROOT / pkg).rglob("*.py"))]


def _logger_calls(tree: ast.AST) -> list[ast.Call]:
    """Calls like ``log.info(...)`` / ``logger.warning(...)`` on a module's logger."""
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in LEVELS
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in {"log", "logger", "_log", "LOG"}
        and node.args
    ]


def test_no_logger_call_has_an_english_literal_message() -> None:
    """A literal log message with words in it must go through ``L_`` (the catalogue);
    a bare ``"%s"`` passing on text made elsewhere is allowed."""
    offenders = []
    calls = 0
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for call in _logger_calls(tree):
            calls += 1
            msg = call.args[0]
            literal = msg.value if isinstance(msg, ast.Constant) else None
            if isinstance(msg, ast.JoinedStr) or (
                isinstance(literal, str) and re.search(r"[A-Za-z]", CONVERSION.sub("", literal))
            ):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{call.lineno}")
    assert calls > 50  # the scan sees the package's logging at all
    assert offenders == [], f"log messages not from the catalogue (wrap them in L_): {offenders}"


def test_every_log_message_has_a_japanese_entry_with_the_same_conversions() -> None:
    with i18n.po_path("ja").open("rb") as f:
        ja = read_po(f, locale="ja")
    ids: set[str] = set()
    for path in _sources():
        found = extract_from_file("python", path, keywords={"L_": None}, comment_tags=())
        ids |= {m[1] for m in found if isinstance(m[1], str)}
    assert len(ids) > 50
    missing = sorted(m for m in ids if not (ja.get(m) and ja[m].string and not ja[m].fuzzy))
    assert missing == [], f"log messages with no Japanese entry: {missing}"
    # The arguments are filled in by position: the translation keeps each one, in order.
    changed = [m for m in ids if CONVERSION.findall(m) != CONVERSION.findall(str(ja[m].string))]
    assert changed == [], f"translations that change the %-conversions: {changed}"


def test_the_event_key_survives_secret_masking() -> None:
    import logging

    from core.logging import EventKey, RedactSecrets

    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, i18n.L_("broker refused connection: %s"),
        ("mqtt://u:hunter2secret@h",), None,
    )  # fmt: skip
    for f in (EventKey(), RedactSecrets(["hunter2secret"])):
        assert f.filter(record)
    assert record.event == "broker refused connection: %s"  # type: ignore[attr-defined]
    assert "hunter2secret" not in record.getMessage()


def _migrate(db_url: str, lang: str, fmt: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEBUKU_")}
    env |= {"MEBUKU_DATABASE_URL": db_url, "MEBUKU_PSEUDONYM_KEY": TEST_PSEUDONYM_KEY,
            "MEBUKU_LANG": lang, "MEBUKU_LOG_FORMAT": fmt, "MEBUKU_LOG_LEVEL": "INFO"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "core.cli", "db", "migrate"],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=180,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("lang", "text"),
    [("ja", "マイグレーション core/0001"), ("en", "applied migration core/0001")],
)
def test_db_migrate_logs_in_the_language_of_the_process(
    empty_db_url: str, lang: str, text: str
) -> None:
    """``mebuku db migrate`` as a service runs it (JSON lines): the message in the process
    language, ``event`` the English id either way, the version a plain argument."""
    out = _migrate(empty_db_url, lang, "json")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stderr.splitlines() if x.startswith("{")]
    applied = [x for x in lines if x.get("event") == "applied migration %s"]
    assert len(applied) > 3, out.stderr
    first = applied[0]
    assert first["message"].startswith(text), first
    assert first["logger"] == "core.migrator" and first["level"] == "INFO"
    if lang == "ja":
        assert first["message"].endswith("を適用しました")
        assert "applied migration" not in out.stderr.replace('"event": "applied migration', "")
    assert all(x["message"] for x in lines)


def test_text_log_lines_are_japanese_by_default(empty_db_url: str) -> None:
    out = _migrate(empty_db_url, "ja", "text")
    assert out.returncode == 0, out.stderr
    assert re.search(
        r"INFO +core\.migrator: マイグレーション core/0001\S* を適用しました", out.stderr
    )
    assert "applied migration" not in out.stderr
