"""Naming a field of a row (--by, --where) and filtering rows by ``--where "p99_ms<=20"``.

A name is a metric (``p99_ms``, ``p99_ms@256``), a grid axis, a config path (``model.family``) or
``env_id`` / ``data_id`` (the environment and data fingerprint a record names).
``precision`` is both a metric and a config key: ``--by`` and text comparisons read the config, numeric
comparisons the metric; write ``metrics.precision`` or ``config.precision`` to say which.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from costbench.errors import UserError, did_you_mean
from costbench.record import METRICS, is_known_metric
from costbench.report.names import axis_key
from costbench.report.rows import Row, flatten

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
}
_CONDITION = re.compile(r"^\s*([A-Za-z_][\w.@]*)\s*(<=|>=|==|!=|<|>)\s*(\S.*?)\s*$")
_MISSING = object()
ROW_FIELDS = ("env_id", "data_id")  # what a record says beside its config: --by env_id compares machines


@dataclass(frozen=True)
class Condition:
    """One parsed --where expression."""

    name: str
    op: str
    value: float | str
    text: str

    def holds(self, row: Row) -> bool:
        got = field_value(row, self.name, numeric=isinstance(self.value, float))
        if got is _MISSING or got is None:
            return False
        if isinstance(self.value, float):
            try:
                return OPERATORS[self.op](float(got), self.value)
            except (TypeError, ValueError):
                return False
        return OPERATORS[self.op](str(got), self.value)


def known_names(rows: list[Row]) -> list[str]:
    """Every name a row can be asked for: metrics, axes and config paths."""
    names = dict.fromkeys(METRICS)
    for row in rows:
        names.update(dict.fromkeys(n for n in ROW_FIELDS if getattr(row, n) is not None))
        names.update(dict.fromkeys(row.metrics))
        names.update(dict.fromkeys(row.axes))
        names.update(dict.fromkeys(flatten(row.config)))
    return list(names)


def field_value(row: Row, name: str, *, numeric: bool) -> Any:
    """The value of ``name`` in a row, or ``_MISSING``; see the module doc for the lookup order."""
    if name in ROW_FIELDS:
        return getattr(row, name)
    scope, _, rest = name.partition(".")
    if scope == "metrics" and rest:
        return row.metrics.get(rest, _MISSING)
    if scope == "config" and rest:
        return _config_value(row, rest)
    in_config = _config_value(row, name)
    if (numeric or in_config is _MISSING) and (name in row.metrics or is_known_metric(name)):
        return row.metrics.get(name)
    return in_config


def _config_value(row: Row, name: str) -> Any:
    if name in row.axes:
        return row.axes[name]
    node: Any = row.config
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def check_name(name: str, rows: list[Row], option: str) -> None:
    """UserError (with a did-you-mean) when no row could ever have this field."""
    bare = name.split(".", 1)[1] if name.split(".", 1)[0] in ("metrics", "config") else name
    known = known_names(rows)
    if name in known or bare in known:
        return
    if is_known_metric(bare) and "@" in bare and rows:  # per-batch: only batch sizes that were measured
        measured = sorted({k for k in known if k.startswith(bare.split("@")[0] + "@")})
        raise UserError(f"{option}: no trial measured '{bare}'{did_you_mean(bare, measured)}; measured: "
                        f"{', '.join(measured) or 'none'}")
    if is_known_metric(bare):
        return
    raise UserError(f"{option} names an unknown field '{name}'{did_you_mean(name, known)}; use a metric "
                    "(auc, p99_ms, ...), a grid axis or a config path such as model.family")


def parse_where(text: str, rows: list[Row]) -> Condition:
    """'p99_ms<=20' -> Condition; a malformed expression or unknown field is a one-line UserError."""
    match = _CONDITION.match(text)
    if not match:
        raise UserError(f"--where '{text}' is not FIELD OP VALUE with OP one of {', '.join(OPERATORS)}; "
                        "e.g. --where \"p99_ms<=20\"")
    name, op, raw = match.groups()
    check_name(name, rows, f"--where '{text}'")
    raw = raw.strip("'\"")
    try:
        value: float | str = float(raw)
    except ValueError:
        value = raw
        if op not in ("==", "!="):
            raise UserError(f"--where '{text}': '{raw}' is not a number, so only == and != apply") from None
    return Condition(name=name, op=op, value=value, text=text)


def apply_where(rows: list[Row], conditions: list[Condition]) -> tuple[list[Row], int]:
    """The rows meeting every condition (a row lacking the field does not), and how many were dropped."""
    kept = [r for r in rows if all(c.holds(r) for c in conditions)]
    return kept, len(rows) - len(kept)


def group_value(row: Row, name: str) -> Any:
    """The --by value of a row ('n/a' when the row lacks the field)."""
    value = field_value(row, name, numeric=False)
    return "n/a" if value is _MISSING or value is None else axis_key(value)
