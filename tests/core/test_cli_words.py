"""typer's and click's own words in the `mebuku` command: Japanese by default, English as
typer writes it with ``MEBUKU_LANG=en`` (core/cli_words.py).

The real command runs as a subprocess (a neutral C.UTF-8 locale, wide terminal, no
``MEBUKU_`` variable but the ones a test sets), as a person would run it.
"""

from __future__ import annotations

import os
import string
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from core import cli_words, i18n
from tests.conftest import REPO_ROOT

# English words of click's and typer's that a Japanese reader must not meet.
BOILERPLATE = (
    "Usage:",
    "Options",
    "Commands",
    "Arguments",
    "Show this message and exit",
    "completion for the current shell",
    "Error",
    "Missing",
    "No such",
    "Invalid value",
    "Did you mean",
    "Try '",
    "for help",
    "[OPTIONS]",
    "COMMAND [ARGS]",
    "[default:",
    "[required]",
    "Input should",
    "unexpected extra",
    "requires an argument",
)
RUNS = (
    ("--help",),
    ("db", "--help"),
    ("fiveg", "report", "--help"),
    ("db", "migrate", "--bogus"),
    ("nosuch",),
    ("dbb",),
    ("demo", "--api-port", "eighty"),
    ("demo", "--api-port", "0"),
    ("db", "migrate", "extra"),
    ("fiveg", "report"),
)


def mebuku(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MEBUKU_") and k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")
    }
    clean |= {"LANG": "C.UTF-8", "COLUMNS": "200", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        cwd=REPO_ROOT,
        timeout=60,
    )


@pytest.mark.parametrize("args", RUNS, ids=" ".join)
def test_japanese_help_and_errors_have_no_english_boilerplate(args: tuple[str, ...]) -> None:
    out = mebuku(*args)
    text = out.stdout + out.stderr
    assert "Traceback" not in text
    assert text.strip().startswith(("使い方: python -m core.cli", "╭─ エラー")), text
    left = [w for w in BOILERPLATE if w in text]
    assert left == [], text


def test_japanese_words_are_the_catalogues() -> None:
    help_ = mebuku("fiveg", "report", "--help").stdout
    assert "使い方: python -m core.cli fiveg report [オプション]" in help_
    assert "╭─ 引数" in help_ and "╭─ オプション" in help_ and "[必須]" in help_
    assert "この説明を表示して終了します。" in help_ and "[既定: auto]" in help_
    err = mebuku("dbb").stderr
    assert "使い方は 'python -m core.cli --help' で確認できます。" in err
    assert "'dbb' というコマンドはありません。'db' のことですか？" in err
    bad = mebuku("demo", "--api-port", "eighty")
    assert bad.returncode == 2
    assert "'--api-port' の値が正しくありません：整数ではありません" in bad.stderr


def test_english_stays_as_typer_writes_it() -> None:
    help_ = mebuku("db", "--help", MEBUKU_LANG="en").stdout
    assert "Usage: python -m core.cli db [OPTIONS] COMMAND [ARGS]..." in help_
    assert "╭─ Options" in help_ and "╭─ Commands" in help_
    assert "Show this message and exit." in help_
    err = mebuku("dbb", MEBUKU_LANG="en")
    assert err.returncode == 2
    assert err.stderr.splitlines()[:2] == [
        "Usage: python -m core.cli [OPTIONS] COMMAND [ARGS]...",
        "Try 'python -m core.cli --help' for help.",
    ]
    assert "No such command 'dbb'. Did you mean 'db'?" in err.stderr
    bad = mebuku("demo", "--api-port", "eighty", LANG="en_US.UTF-8").stderr
    assert "Invalid value for '--api-port': Input should be a valid integer" in bad
    assert "╭─ Error" in bad
    assert not any("\u3040" <= c <= "\u30ff" for c in help_ + err.stderr + bad)


def _sample(template: str) -> dict[str, str]:
    fields = {f[1] for f in string.Formatter().parse(template) if f[1]}
    values = {"label": "file", "nargs": "2", "message": "Missing command."}
    return {f: values.get(f, f"'x-{f}'") for f in fields}


@pytest.mark.parametrize("template", cli_words.ERROR_WORDS)
def test_every_error_sentence_is_recognised_and_said_again(template: str) -> None:
    fields = _sample(template)
    english = template.format(**fields)
    said = cli_words.say_again(english, "ja")
    assert said != english
    for name, value in fields.items():
        if name not in ("label", "message"):
            assert value in said  # option names, values and paths verbatim
    assert cli_words.say_again(english, "en") == english


def test_every_word_typer_asks_gettext_for_has_a_japanese_entry() -> None:
    """typer calls gettext for these at run time; a new typer version adding one fails here."""
    import typer

    with i18n.po_path("ja").open("rb") as f:
        ja = read_po(f, locale="ja")
    found: set[str] = set()
    for module in ("core.py", "rich_utils.py"):
        path = Path(typer.__file__).parent / module
        msgs = extract_from_file("python", path, keywords={"_": None}, comment_tags=())
        found |= {m[1] for m in msgs if isinstance(m[1], str)}
    assert len(found) > 10
    found -= cli_words._KEEP_ENGLISH  # said again as a whole, with typer's suggestion
    missing = sorted(m for m in found if not (ja.get(m) and ja[m].string))
    assert missing == []
    assert set(cli_words.RICH_STRINGS.values()) <= found
