"""The one way tests wait for something that happens in another thread or process.

Prefer an event or a callback where the code under test offers one (``worker.subscribed``,
``server.started``); poll with :func:`wait_until` only for outcomes that have no signal,
such as rows appearing in a table or a port starting to listen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(cond: Callable[[], T], timeout: float, every: float = 0.25) -> T:
    """Call ``cond`` until it returns a truthy value and return that value; after
    ``timeout`` seconds return its last (falsy) value, so ``assert wait_until(...), why``
    fails with the caller's message. The last call is made after the deadline, so a slow
    machine never fails a wait that a final look would have passed. An exception (such as
    an assertion that a child process is still alive) stops the wait at once."""
    deadline = time.monotonic() + timeout
    while True:
        expired = time.monotonic() >= deadline
        value = cond()
        if value or expired:
            return value
        time.sleep(every)
