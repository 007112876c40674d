"""The message catalogue: language choice, and a Japanese entry for every report string."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from core import i18n

REPO = Path(__file__).resolve().parents[2]
# Modules whose user-visible strings must all be in the Japanese catalogue.
TRANSLATED = (
    "fiveg/report.py",
    "fiveg/labels.py",
    "ingest/dashboard.py",
    "mobility/dashboard.py",
    "mobility/fares/dashboard.py",
    "fiveg/dashboard.py",
    "api/grafana/platform_dashboard.py",
    "api/grafana/build.py",
    # The CLI (language of the process: MEBUKU_LANG, the locale, else Japanese).
    "core/cli.py",
    "mobility/cli.py",
    "mobility/fares/cli.py",
    "fiveg/cli.py",
    "api/cli.py",
    "api/grafana/cli.py",
    "core/demo.py",
    "core/broker.py",
    "ingest/cli.py",
    "ingest/simulate/cli.py",
    "ingest/simulate/feed.py",  # the simulator's notes on the timetable it runs
    "mobility/fares/devcli.py",
    # Settings errors and typer's/click's own words (process language).
    "core/settings.py",
    "core/cli_words.py",
    "core/i18n.py",
    "portal/cli.py",
    "opendata/cli.py",
    "api/keys.py",
    "mobility/vehicles/registry.py",
    "fiveg/engine.py",  # KPI request errors: problems (API) and CLI lines
    "mobility/gtfs/parser.py",  # why a feed is refused (mebuku gtfs import)
    "mobility/fares/settlement.py",  # why a month cannot be closed or re-issued
)
KEYWORDS = {"_": None, "N_": None, "L_": None, "gettext": None, "w": None}


def _msgids(path: str) -> set[str]:
    found = extract_from_file("python", REPO / path, keywords=KEYWORDS, comment_tags=())
    return {m[1] for m in found if isinstance(m[1], str)}


@pytest.mark.parametrize("path", TRANSLATED)
def test_every_user_visible_string_has_a_japanese_entry(path: str) -> None:
    with i18n.po_path("ja").open("rb") as f:
        ja = read_po(f, locale="ja")
    ids = _msgids(path)
    assert len(ids) >= 3  # the extraction sees the module's strings at all
    missing = sorted(m for m in ids if not (ja.get(m) and ja[m].string and not ja[m].fuzzy))
    assert missing == [], f"no Japanese entry in core/locale/ja for: {missing}"


def test_every_problem_title_has_a_japanese_entry() -> None:
    """RFC 9457 titles are chosen by Accept-Language (Japanese by default)."""
    from api.problems import STATUS_SLUGS

    with i18n.po_path("ja").open("rb") as f:
        ja = read_po(f, locale="ja")
    titles = {title for _slug, title in STATUS_SLUGS.values()} | {"HTTP error"}
    for pkg in ("api", "core", "fiveg", "ingest", "mobility"):
        for path in sorted((REPO / pkg).rglob("*.py")):
            found = extract_from_file(
                "python", path, keywords={"ProblemError": (3,)}, comment_tags=()
            )
            titles |= {m[1] for m in found if isinstance(m[1], str)}
    assert len(titles) > 20
    missing = sorted(t for t in titles if not (ja.get(t) and ja[t].string))
    assert missing == [], f"problem titles with no Japanese entry: {missing}"


def _problem_details(path: Path) -> list[tuple[int, str | None]]:
    """Each ``ProblemError(status, slug, title, detail)`` detail written in ``path`` (its
    text when it is a literal or a module constant, None when it is an f-string, which the
    catalogue cannot hold: those use ``F_``), and each ``F_`` message id."""
    import ast

    tree = ast.parse(path.read_text())
    consts = {
        t.id: n.value.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign)
        and isinstance(n.value, ast.Constant)
        and isinstance(n.value.value, str)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    out: list[tuple[int, str | None]] = []
    for n in ast.walk(tree):
        if not isinstance(n, ast.Call):
            continue
        name = getattr(n.func, "id", getattr(n.func, "attr", ""))
        if name == "F_" and n.args and isinstance(n.args[0], ast.Constant):
            out.append((n.lineno, str(n.args[0].value)))  # said later, by its id
        if name != "ProblemError":
            continue
        args = n.args[3:4] + [k.value for k in n.keywords if k.arg == "detail"]
        for a in args:
            if isinstance(a, ast.Constant) and isinstance(a.value, str):
                out.append((n.lineno, a.value))
            elif isinstance(a, ast.Name) and a.id in consts:
                out.append((n.lineno, consts[a.id]))
            elif isinstance(a, ast.JoinedStr):
                out.append((n.lineno, None))
    return out


def test_every_problem_detail_has_a_japanese_entry() -> None:
    """A problem's detail is said in the client's language too (api.problems translates a
    catalogue id or an ``F_`` message); an f-string would stay English for everyone."""
    with i18n.po_path("ja").open("rb") as f:
        ja = read_po(f, locale="ja")
    seen = 0
    missing = []
    for pkg in ("api", "core", "fiveg", "ingest", "mobility", "opendata", "portal"):
        for path in sorted((REPO / pkg).rglob("*.py")):
            for line, text in _problem_details(path):
                seen += 1
                where = f"{path.relative_to(REPO)}:{line}"
                if text is None:
                    missing.append(f"{where}: an f-string (use F_)")
                elif not (ja.get(text) and ja[text].string):
                    missing.append(f"{where}: {text!r}")
    assert seen > 30  # the scan sees the details at all
    assert missing == [], "problem details with no Japanese entry:\n" + "\n".join(missing)


def test_placeholders_survive_translation() -> None:
    """A translation that drops or renames {placeholders} would break .format()."""
    import string

    with i18n.po_path("ja").open("rb") as f:
        ja = read_po(f, locale="ja")
    for m in ja:
        if not m.id or not m.string:
            continue
        fields = {f[1] for f in string.Formatter().parse(str(m.id)) if f[1]}
        got = {f[1] for f in string.Formatter().parse(str(m.string)) if f[1]}
        assert fields == got, m.id


def test_translator_is_japanese_first() -> None:
    assert i18n.gettext("Pass") == "合格"
    assert i18n.gettext("Pass", "en") == "Pass"
    assert i18n.gettext_for("ja")("Fail") == "不合格"
    assert i18n.gettext("a string nobody translated") == "a string nobody translated"


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        (None, "ja"),
        ("", "ja"),
        ("en", "en"),
        ("en-US,en;q=0.9", "en"),
        ("ja-JP,ja;q=0.9,en;q=0.8", "ja"),
        ("en;q=0.5, ja;q=0.8", "ja"),
        ("fr-FR, en;q=0.3", "en"),
        ("fr, de", "ja"),
        ("en;q=0, ja;q=0.1", "ja"),
        ("en;q=bogus", "ja"),
        ("*", "ja"),
    ],
)
def test_accept_language(header: str | None, lang: str) -> None:
    assert i18n.negotiate(header) == lang


def test_cli_messages_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEBUKU_LANG", raising=False)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    assert i18n.cli_gettext("up to date") == "最新の状態です"
    monkeypatch.setenv("LC_ALL", "en_US.UTF-8")
    assert i18n.cli_gettext("up to date") == "up to date"
    monkeypatch.setenv("MEBUKU_LANG", "ja")
    assert i18n.cli_gettext("up to date") == "最新の状態です"


def test_demo_prints_keys_in_the_language_of_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from core.demo import DemoKey, print_keys

    key = DemoKey(role="operator", operator_id="gunmachuo", key="mbk_x")
    for lang, header in (("ja", "APIキー（operator gunmachuo）"), ("en", "API key (operator")):
        monkeypatch.setenv("MEBUKU_LANG", lang)
        out = io.StringIO()
        print_keys([key], out)
        first, second = out.getvalue().splitlines()
        assert first.startswith(header) and second == "mbk_x"


def test_process_language() -> None:
    assert i18n.process_lang({}) == "ja"
    assert i18n.process_lang({"LANG": "C.UTF-8"}) == "ja"
    assert i18n.process_lang({"LANG": "en_US.UTF-8"}) == "en"
    assert i18n.process_lang({"LANG": "en_US.UTF-8", "MEBUKU_LANG": "ja"}) == "ja"
    assert i18n.process_lang({"LC_ALL": "ja_JP.UTF-8", "LANG": "en_US.UTF-8"}) == "ja"
