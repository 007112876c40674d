"""typer's and click's own words (``Usage:``, ``Options``, ``Show this message and exit.``,
``Missing option``, ``No such command``, ...) in the language of the ``mebuku`` process.

Why this module exists: typer (0.2x) vendors click as ``typer._click`` and that copy has no
gettext at all: its words are English literals. typer itself still asks Python's
``gettext.gettext`` (domain ``messages``) for a few words, and computes its panel titles
and hints once, at import. Every help screen and every usage error goes through
``typer.rich_utils.rich_format_help`` / ``rich_format_error``. :func:`install`, called once
by ``core.cli`` before the command runs, gives them Japanese from our catalogue
(``core/locale``, the same ``.po`` files as everything else):

1. typer's gettext calls (``typer.core._``, ``typer.rich_utils._``) look up our catalogue;
2. rich_utils' fixed strings (panel titles, ``[default: ...]``, ``Try ... for help.``) are
   set again from their English ids (:data:`RICH_STRINGS`);
3. the usage line's ``Usage:`` comes from a help formatter whose prefix is translated;
4. the help of the options typer and click add themselves (``--help``,
   ``--install-completion``, ``--show-completion``) is translated when help is shown, and
   so is the type shown next to each option (``<int>``, ``<path>``: :data:`TYPE_LABELS`,
   from ``typer.core._TyperParameter.display_type``);
5. an error's message is matched against click's and typer's English sentences
   (:data:`ERROR_WORDS`, which are also the message ids) and said again in the language;
   a value pydantic refused is explained by its error type (``core.i18n.validation_words``).

Each hook asks the language at every use (``MEBUKU_LANG`` of the run, then the locale);
in English every hook gives typer's own words back, so the output is exactly typer's. A
sentence no template matches is shown as typer wrote it (a new typer version's new words
show up in English rather than breaking the command).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

from core.i18n import N_, Lang, process_lang, translator, validation_words

# typer.rich_utils constants (computed with gettext at import) -> their English ids.
RICH_STRINGS: dict[str, str] = {
    "DEPRECATED_STRING": N_("(deprecated) "),
    "DEFAULT_STRING": N_("[default: {}]"),
    "ENVVAR_STRING": N_("[env var: {}]"),
    "REQUIRED_LONG_STRING": N_("[required]"),
    "ARGUMENTS_PANEL_TITLE": N_("Arguments"),
    "OPTIONS_PANEL_TITLE": N_("Options"),
    "COMMANDS_PANEL_TITLE": N_("Commands"),
    "ERRORS_PANEL_TITLE": N_("Error"),
    "ABORTED_TEXT": N_("Aborted."),
    "RICH_HELP": N_("Try [blue]'{command_path} {help_option}'[/] for help."),
}

# Words typer asks gettext for while it runs (typer/core.py, typer/rich_utils.py).
TYPER_GETTEXT = (
    N_("(dynamic)"),
    N_("Aborted!"),
    N_("default: {default}"),
    N_("required"),
    N_("env var: {var}"),
    N_("Missing command."),
)
# typer adds "Did you mean ...?" to this one by cutting its final "." off: it stays English
# in typer and the whole sentence is said again when shown (ERROR_WORDS).
_KEEP_ENGLISH = frozenset({"No such command {name!r}."})

USAGE_PREFIX = N_("Usage: ")
# The placeholders click writes into a usage line (Command.options_metavar, a group's
# subcommand metavar), longest first.
USAGE_METAVARS = (
    N_("COMMAND1 [ARGS]... [COMMAND2 [ARGS]...]..."),
    N_("COMMAND [ARGS]..."),
    N_("[OPTIONS]"),
)

# The type typer shows next to each option and argument in help (display_type_rich).
TYPE_LABELS = (
    N_("<str>"),
    N_("<int>"),
    N_("<float>"),
    N_("<bool>"),
    N_("<int range>"),
    N_("<float range>"),
    N_("<path>"),
    N_("<file>"),
    N_("<directory>"),
    N_("<datetime>"),
    N_("<list[str]>"),
    N_("<list[int]>"),
)

# Help of the options typer and click add to every command.
OPTION_HELP = (
    N_("Show this message and exit."),
    N_("Install completion for the current shell."),
    N_("Show completion for the current shell, to copy it or customize the installation."),
)

# click's and typer's error sentences, as they print them. A {placeholder} matches any text
# (the shortest), except those in _PLACEHOLDER_PATTERNS; {message} is said again itself.
ERROR_WORDS = (
    N_("Missing option {hint}."),
    N_("Missing option {hint}. Choose from:\n\t{choices}"),
    N_("Missing argument {hint}."),
    N_("Missing argument {hint}. Choose from:\n\t{choices}"),
    N_("Missing parameter {hint}."),
    N_("Missing command."),
    N_("Invalid value for {hint}: {message}"),
    N_("Invalid value: {message}"),
    N_("No such option: {name}"),
    N_("No such option: {name} (Possible options: {options})"),
    N_("No such command {name}."),
    N_("No such command {name}. Did you mean {suggestions}?"),
    N_("Got unexpected extra argument(s) ({args})"),
    N_("Option {name} requires an argument."),
    N_("Option {name} requires {nargs} arguments."),
    N_("Option {name} does not take a value."),
    N_("Argument {name} takes {nargs} values."),
    N_("Value must be an iterable."),
    N_("Value {value} is not a valid {kind}."),
    N_("{value} is not one of {choices}."),
    N_("{label} {path} does not exist."),
    N_("{label} {path} is a file."),
    N_("{label} {path} is a directory."),
    N_("{label} {path} is not readable."),
    N_("{label} {path} is not writable."),
    N_("Could not open file {filename}: {message}"),
)
# The kinds of path typer names in its path errors ({label} above).
PATH_LABELS = {"file": N_("File"), "dir": N_("Directory"), "path": N_("Path")}
_PLACEHOLDER_PATTERNS = {"label": "|".join(PATH_LABELS), "nargs": r"\d+"}


def _pattern(template: str) -> re.Pattern[str]:
    """A regular expression matching what ``template`` formats to, one group per field."""
    parts = re.split(r"\{(\w+)(?:![rsa])?\}", template)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>{_PLACEHOLDER_PATTERNS.get(part, '.+?')})"
        for i, part in enumerate(parts)
    )
    return re.compile(regex, re.DOTALL)


@cache
def _patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple((t, _pattern(t)) for t in ERROR_WORDS)


def say_again(text: str, lang: Lang, cause: BaseException | None = None) -> str:
    """An error sentence of click or typer in ``lang``: the first template of
    :data:`ERROR_WORDS` that matches the whole text, its fields kept verbatim (a nested
    ``{message}`` said again too, a pydantic ``cause`` by its error type). Unmatched text,
    and anything in English, is returned as it is."""
    if lang == "en":
        return text
    errors = _pydantic_errors(cause)
    if errors and text == str(errors[0].get("msg")):
        return validation_words(errors[0], lang)
    tr = translator(lang).gettext
    for template, pattern in _patterns():
        m = pattern.fullmatch(text)
        if m is None:
            continue
        fields = m.groupdict()
        if "message" in fields:
            fields["message"] = say_again(fields["message"], lang, cause)
        if "label" in fields:
            fields["label"] = tr(PATH_LABELS[fields["label"]])
        braces = re.sub(r"\{(\w+)![rsa]\}", r"{\1}", tr(template))  # fields are text already
        return braces.format(**fields)
    return text


def _pydantic_errors(cause: BaseException | None) -> list[Any]:
    errors = getattr(cause, "errors", None)
    if cause is None or not callable(errors):
        return []
    try:
        return list(errors())
    except Exception:  # not a pydantic error after all
        return []


def _lang() -> Lang:
    return process_lang()


def _gettext(message: str) -> str:
    """``message`` in the process language; English is the id itself (typer's own word)."""
    lang = _lang()
    return message if lang == "en" else translator(lang).gettext(message)


def install() -> None:
    """Make typer's and click's words those of the process language, looked up at each use
    (so ``MEBUKU_LANG`` of the run decides, as for our own messages). English leaves
    typer's output as it is; calling it again is harmless."""
    import typer.core
    from typer import _click, rich_utils

    if getattr(rich_utils.rich_format_help, "_mebuku", False):
        return
    english = {name: getattr(rich_utils, name) for name in RICH_STRINGS}

    def typer_gettext(message: str) -> str:
        return message if message in _KEEP_ENGLISH else _gettext(message)

    def set_rich_strings() -> None:
        for name, msgid in RICH_STRINGS.items():
            setattr(rich_utils, name, english[name] if _lang() == "en" else _gettext(msgid))

    class Formatter(_click.HelpFormatter):
        """click's help formatter with the usage line's prefix in the process language."""

        def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
            """The usage line, prefixed with the translated ``Usage:``."""
            if _lang() != "en":
                prefix = _gettext(USAGE_PREFIX) if prefix is None else prefix
                for metavar in USAGE_METAVARS:
                    args = args.replace(metavar, _gettext(metavar))
            super().write_usage(prog, args, prefix)

    typer.core._ = typer_gettext  # type: ignore[attr-defined]
    rich_utils._ = typer_gettext  # type: ignore[attr-defined]
    _click.Context.formatter_class = Formatter
    english_type = typer.core._TyperParameter.display_type

    def display_type(self: Any, ctx: Any) -> str:
        label = english_type(self, ctx)
        return _gettext(label) if label in TYPE_LABELS else label

    typer.core._TyperParameter.display_type = display_type  # type: ignore[method-assign]
    rich_utils.rich_format_help = _help_in(rich_utils.rich_format_help, set_rich_strings)
    rich_utils.rich_format_error = _errors_in(rich_utils.rich_format_error, set_rich_strings)
    abort = rich_utils.rich_abort_error

    def rich_abort_error() -> None:
        set_rich_strings()
        abort()

    rich_utils.rich_abort_error = rich_abort_error


def _help_in(original: Callable[..., None], before: Callable[[], None]) -> Callable[..., None]:
    def rich_format_help(*, obj: Any, ctx: Any, markup_mode: Any) -> None:
        before()
        for param in obj.get_params(ctx):  # the English id is kept for the next language
            msgid = getattr(param, "_mebuku_help", None) or getattr(param, "help", None)
            if msgid in OPTION_HELP:
                param._mebuku_help = msgid
                param.help = _gettext(msgid)
        original(obj=obj, ctx=ctx, markup_mode=markup_mode)

    rich_format_help._mebuku = True  # type: ignore[attr-defined]
    return rich_format_help


def _errors_in(original: Callable[..., None], before: Callable[[], None]) -> Callable[..., None]:
    from typer import _click
    from typer._click.exceptions import UsageError

    def rich_format_error(self: Any) -> None:
        before()
        if type(self).__name__ == "NoArgsIsHelpError":  # its message is the help screen
            original(self)
            return
        text = self.format_message()
        said = say_again(text, _lang(), self.__cause__)
        if said == text:
            original(self)
            return
        if isinstance(self, UsageError):
            again: Any = UsageError(said, ctx=self.ctx)
        else:
            again = _click.ClickException(said)
        original(again)

    return rich_format_error
