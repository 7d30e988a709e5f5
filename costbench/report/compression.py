"""Each compressed trial beside its references: its teacher and the same-shape model trained from scratch.

The scratch reference of a compressed row is the row of the run trained without ``compress`` whose
model has the same resolved shape (``details.hparams``: the pruned shape for a pruned trial) and whose
config is otherwise the same (data, precision, runtime, serving; the seed aside, as repeats are
averaged), with the same ``train`` section where the run has one (a pruned model's twin is rather
trained for its train + fine-tune epochs). A distilled row's teacher figures are in its own record (``teacher_auc``,
``teacher_cost_usd``), and the run's own trial of the teacher's config (fp32, eager), if it has one,
is named beside it; "gap closed" is (student - scratch) / (teacher - scratch) of the AUC means,
shown only when the teacher is the better of the two. Reads rows only: no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from costbench.compress.label import compress_label
from costbench.report.rows import Row
from costbench.spec import canonical_json


@dataclass
class Comparison:
    """One compressed row and what it is compared with."""

    row: Row
    what: str  # the compression in a few words
    scratch: Row | None  # same shape, same config, no compress
    unpruned: Row | None = None  # compress.prune: the scratch row of the shape before pruning
    teacher: Row | None = None  # compress.distill: the run's own trial of the teacher's config, if any

    @property
    def auc_vs_scratch(self) -> float | None:
        return _difference(self.row.metrics.get("auc"), self.scratch.metrics.get("auc") if self.scratch else None)

    @property
    def auc_vs_teacher(self) -> float | None:
        return _difference(self.row.metrics.get("auc"), self.row.metrics.get("teacher_auc"))

    @property
    def gap_closed(self) -> float | None:
        """Share of the teacher-over-scratch AUC gap the student closes (None without a positive gap)."""
        gain = self.auc_vs_scratch
        teacher = self.row.metrics.get("teacher_auc")
        scratch = self.scratch.metrics.get("auc") if self.scratch else None
        if gain is None or not _number(teacher) or not _number(scratch) or teacher <= scratch:
            return None
        return gain / (teacher - scratch)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _difference(a: Any, b: Any) -> float | None:
    return a - b if _number(a) and _number(b) else None


def shape_key(row: Row, hparams: Any = None) -> str:
    """What a compressed row shares with its scratch references: the config without compress, model, train
    and seed, plus the resolved model shape (default: the one it was served with)."""
    config = {k: v for k, v in row.config.items() if k not in ("compress", "model", "train", "seed")}
    return canonical_json({"config": config, "hparams": hparams or row.details.get("hparams"),
                           "data_id": row.data_id})


def comparisons(rows: list[Row]) -> list[Comparison]:
    """Every compressed row (config has ``compress``), with its scratch references where the run has them:
    of the same-shape rows, the one with the same ``train`` section, else the first (a pruned model's
    scratch twin is usually trained for its train + fine-tune epochs)."""
    scratch: dict[str, list[Row]] = {}
    for row in rows:
        if not row.config.get("compress"):
            scratch.setdefault(shape_key(row), []).append(row)

    def pick(row: Row, key: str) -> Row | None:
        candidates = scratch.get(key, [])
        same_budget = [r for r in candidates if r.config.get("train") == row.config.get("train")]
        return (same_budget or candidates or [None])[0]

    teachers = {teacher_key(r.config, r.config.get("model"), r.config.get("train")): r for r in rows
                if not r.config.get("compress") and r.config.get("precision") == "fp32"
                and (r.config.get("serve") or {}).get("runtime", "eager") == "eager"}
    found = []
    for row in rows:
        if not row.config.get("compress"):
            continue
        before = ((row.details.get("training") or {}).get("prune") or {}).get("hparams_before")
        teacher = dict((row.config["compress"].get("distill") or {}).get("teacher") or {})
        teacher.pop("seed", None)  # a teacher trial's repeats are averaged like any row's
        found.append(Comparison(
            row=row, what=compress_label(row.config["compress"]), scratch=pick(row, shape_key(row)),
            unpruned=pick(row, shape_key(row, before)) if before else None,
            teacher=teachers.get(teacher_key(row.config, teacher, teacher.pop("train", None))) if teacher else None))
    return found


def teacher_key(config: dict[str, Any], model: Any, train: Any) -> str:
    """A teacher as a trial of its own: its model and training on the same data and device (fp32, eager)."""
    return canonical_json({"data": config.get("data"), "device": config.get("device"), "model": model,
                           "train": train})


def cost_view_notes(rows: list[Row]) -> list[str]:
    """What the report's train_cost_usd means for distilled rows, and how many students share a teacher."""
    distilled = [r for r in rows if (r.config.get("compress") or {}).get("distill")]
    if not distilled:
        return []
    teachers = {((t := r.details.get("teacher") or {}).get("id"), t.get("extra_rows")) for r in distilled}
    students = sum(r.n for r in distilled)
    return [f"train_cost_usd of a distilled trial includes all of its teacher's cost (teacher_cost_usd: "
            f"training it and labelling the rows it distils), and rankings here use that view: a student cannot "
            f"be had without its teacher. The sweep made {len(teachers)} teacher file(s) (one per teacher and "
            f"extra_rows), once each, for "
            f"{students} distilled trial(s); own_train_cost_usd is a student's training alone "
            "(rank on it with --objectives to see the shared-teacher view)"]
