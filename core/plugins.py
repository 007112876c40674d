"""The one discovery mechanism: entry points in pyproject.toml, failing loudly.

Domains declare what they contribute through entry-point groups, so core never imports a
domain (dependencies point inward):

- ``mebuku.cli``: CLI groups (a typer app or a command function)
- ``mebuku.migrations``: packages with a ``migrations/`` folder
- ``mebuku.routers``: modules with a FastAPI ``router``
- ``mebuku.dashboards``: ``def dashboards() -> list[(folder, dashboard)]``
- ``mebuku.broker``: ``def accounts(conn) -> list[Account]`` (core/broker.py)
- ``mebuku.streams``: ``def declarations() -> list[StreamDecl]`` (core/streams.py)

Entries load in name order (hence the numeric prefixes). An entry that fails to import
raises :class:`PluginError` naming the group, the entry and the module, with the import
error as its cause: a broken or missing domain stops the program instead of vanishing.
After editing entry points, reinstall: ``.venv/bin/pip install -e . --no-deps``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Any


class PluginError(RuntimeError):
    """A declared entry point that cannot be loaded."""


@dataclass(frozen=True)
class Plugin:
    """A loaded entry point, with the names needed to report it when it misbehaves."""

    group: str
    name: str
    value: str  # "module" or "module:attribute"
    obj: Any

    @property
    def module(self) -> str:
        """The module part of the entry point, for error messages."""
        return self.value.split(":", 1)[0].strip()


def declared(group: str) -> list[metadata.EntryPoint]:
    """The group's entry points in name order, not loaded."""
    return sorted(metadata.entry_points(group=group), key=lambda ep: ep.name)


def modules(group: str) -> list[str]:
    """The module each entry point of ``group`` names, in name order (nothing imported)."""
    return [ep.value.split(":", 1)[0].strip() for ep in declared(group)]


def load(group: str) -> list[Plugin]:
    """Every entry point of ``group``, loaded; the first that fails raises PluginError."""
    found: list[Plugin] = []
    for ep in declared(group):
        try:
            obj = ep.load()
        except Exception as e:
            raise PluginError(
                f"{group} entry point {ep.name!r} ({ep.value}) failed to load: "
                f"{type(e).__name__}: {e}"
            ) from e
        found.append(Plugin(group, ep.name, ep.value, obj))
    return found
