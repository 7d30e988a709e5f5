"""Errors a user can fix, told in one line.

Anything raised as ``UserError`` reaches the terminal as a single line on stderr and exit status 2;
everything else is our bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable

from rich.console import Console
from rich.markup import escape


class TrialSkipped(Exception):
    """This combination cannot run honestly on this machine; the message is the skip reason.

    The one way anything in a trial says "skipped": a missing package, a precision without kernels, a
    device that is not there. Never substitute something else and carry on.
    """


class UserError(Exception):
    """A mistake in the user's input: says what is wrong, where, and how to fix it."""

    exit_code = 2

    def __init__(self, message: str, where: str | None = None) -> None:
        self.where = where
        self.message = message  # without the place, for a caller that adds context to it
        super().__init__(f"{where}: {message}" if where else message)


def did_you_mean(value: object, allowed: Iterable[object]) -> str:
    """A ' (did you mean X?)' hint for a misspelt name, or '' when nothing is close."""
    names = [str(a) for a in allowed]
    close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def echo(value: object, limit: int = 80) -> str:
    """A user's value as a message quotes it: strings as written (non-ASCII kept), anything else as JSON,
    control characters escaped so the message stays one line, cut to ``limit`` characters with '…'."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[:limit + 1])
    return text if len(text) <= limit else text[:limit - 1] + "…"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none), for a one-line reason."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def allowed_list(allowed: Iterable[object]) -> str:
    return ", ".join(str(a) for a in allowed)


def warn(stderr: Console, message: str) -> None:
    """One yellow 'warning:' line; the message is printed as text, never read as rich markup."""
    stderr.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)
