"""Errors a user can fix, told in one line.

Anything raised as ``UserError`` reaches the terminal as a single line on stderr and exit status 2;
everything else is our bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from rich.console import Console
from rich.markup import escape


class UserError(Exception):
    """A mistake in the user's input: says what is wrong, where, and how to fix it."""

    exit_code = 2

    def __init__(self, message: str, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


def did_you_mean(value: object, allowed: Iterable[object]) -> str:
    """A ' (did you mean X?)' hint for a misspelt name, or '' when nothing is close."""
    names = [str(a) for a in allowed]
    close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def allowed_list(allowed: Iterable[object]) -> str:
    return ", ".join(str(a) for a in allowed)


def warn(stderr: Console, message: str) -> None:
    """One yellow 'warning:' line; the message is printed as text, never read as rich markup."""
    stderr.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)
