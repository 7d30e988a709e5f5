"""A compress setting in a few words, for tables and the live display (torch-free: the report uses it)."""

from __future__ import annotations

from typing import Any


def compress_label(value: Any) -> Any:
    """A ``compress`` section, or its ``distill`` / ``prune`` part, in a few words (other values unchanged):
    ``{"teacher": {"family": "catboost", "size": "s"}, "alpha": 0.5, ...}`` -> 'distil catboost s a=0.5 T=1'."""
    if value is None:
        return "none"
    if not isinstance(value, dict):
        return value
    if "teacher" in value:
        teacher = value.get("teacher") or {}
        extra = value.get("extra_rows") or 0
        return (f"distil {teacher.get('family')} {teacher.get('size')} a={value.get('alpha'):g} "
                f"T={value.get('temperature'):g}" + (f" +{extra:,} rows" if extra else ""))
    if "amount" in value:
        return f"prune {value.get('amount'):.0%} ft={value.get('finetune_epochs')}"
    parts = [compress_label(value[k]) for k in ("distill", "prune") if value.get(k) is not None]
    return ", ".join(parts) or "none"


def axis_label(axis: str, value: Any) -> Any:
    """A grid value as shown: a ``compress`` section or part as its label, anything else unchanged."""
    return compress_label(value) if axis.startswith("compress") else value
