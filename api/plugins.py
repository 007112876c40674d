"""Optional imports of domain modules that may not exist yet.

A module that does not exist (itself or its package) is skipped; any other import error
(a bug, a missing dependency inside it) is raised, so a broken domain never vanishes
silently from the API or the dashboards.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

from core.i18n import L_

log = logging.getLogger(__name__)


def import_optional(module: str) -> ModuleType | None:
    """Import a module that may be absent; a module that is present but broken still raises."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and (e.name == module or module.startswith(e.name + ".")):
            log.info(L_("%s not present; skipped"), module)
            return None
        raise
