"""An exclusive flock that says when it has to wait, so the executor can stop the waiting trial's
timeout clock (another trial holding a lock is not this trial's own time)."""

from __future__ import annotations

import fcntl
from collections.abc import Callable


def lock_exclusive(fd: int, on_wait: Callable[[], None] | None = None,
                   on_acquired: Callable[[], None] | None = None) -> None:
    """Take ``fd``'s exclusive flock; ``on_wait`` is called if another holder makes this one wait, and
    ``on_acquired`` once the lock is ours after such a wait."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if on_wait:
            on_wait()
        fcntl.flock(fd, fcntl.LOCK_EX)
        if on_acquired:
            on_acquired()
