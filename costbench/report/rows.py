"""From trial records to report rows: repeats averaged, fp32 twins compared, doubtful rows flagged.

One row is one grid point (records sharing ``group``); with ``repeats`` its metrics are the mean over the
repeats that finished ``ok`` and ``std`` holds their standard deviation.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from costbench.compress.label import axis_label
from costbench.record import NOISY_DRIFT
from costbench.spec import canonical_json

TWIN_SHARE = 0.99  # MLPerf: a low-precision model must keep >= 99% of its fp32 twin's quality
CHANCE_AUC = 0.55  # below this a ranking model is hardly better than a coin
FAR_BELOW_BEST = 0.05  # AUC this far below the run's best on the same data is not a contender
TAIL_RATIO = 10.0  # p99 / p50 of a steady kernel stays well under this (about 1.5-3x on a quiet CPU)
ROUND_P99_SPREAD = 0.5  # the interleaved rounds' p99s may differ this much before the tail is not stable

FLAGS = {
    "below-twin": f"AUC below {TWIN_SHARE:.0%} of its fp32 twin (same config, precision fp32)",
    "low-quality": f"AUC at chance level (< {CHANCE_AUC}), more than {FAR_BELOW_BEST} below the best AUC of the "
                   "run on the same data, or below --min-quality x the best fp32 AUC of its model family; never "
                   "picked or planned first",
    "noisy": f"latency not stable: the probe drifted or the rounds' p50s differed by more than {NOISY_DRIFT:.0%}, "
             f"the rounds' p99s differed by more than {ROUND_P99_SPREAD:.0%}, or p99 was more than "
             f"{TAIL_RATIO:g}x p50 at the headline batch size (a steady kernel stays far below that)",
    "noisy-position": "front position decided by a noisy figure: with its latency at its interval's low end "
                      "(or its p50 times the steady trials' p99/p50) it would be on the front",
}


@dataclass
class Row:
    """One grid point of a run, as the report shows it."""

    id: str
    group: str
    n: int
    axes: dict[str, Any]
    config: dict[str, Any]
    metrics: dict[str, float | None]
    std: dict[str, float | None]
    details: dict[str, Any]
    env_id: str | None = None  # the environment file the trial ran in (records of schema >= 2)
    data_id: str | None = None  # the fingerprint of the data it trained on (records of schema >= 2)
    proposed_by: str | None = None  # a search's point: who chose it (the sampler or "fill-in")
    flags: list[str] = field(default_factory=list)
    by: Any = None
    rank: int = 0  # 0 = not ranked (a missing objective)
    tie: bool = False
    pick: bool = False

    def batch_stats(self) -> dict[int, dict[str, float]]:
        """Serving stats per measured batch size, from ``details['latency']`` and ``name@batch`` metrics.

        The ``name@batch`` metrics win where both exist: they are what the record's table shows.
        """
        stats: dict[int, dict[str, float]] = {}
        latency = self.details.get("latency")
        per_batch = latency.get("batch_sizes") if isinstance(latency, dict) else None
        if isinstance(per_batch, dict):
            for batch, values in per_batch.items():
                if str(batch).isdigit() and isinstance(values, dict):
                    stats[int(batch)] = {k: float(v) for k, v in values.items() if _is_number(v)}
        for name, value in self.metrics.items():
            base, _, batch = name.partition("@")
            if batch.isdigit() and _is_number(value):
                stats.setdefault(int(batch), {})[base] = float(value)
        if not stats and _is_number(self.metrics.get("p99_ms")):
            batch = headline_batch(self)
            if batch:
                stats[batch] = {k: float(v) for k in ("p50_ms", "p99_ms", "throughput")
                                if _is_number(v := self.metrics.get(k))}
        return dict(sorted(stats.items()))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def status_counts(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str(r.get("status")) for r in records)


def aggregate(records: list[dict[str, Any]]) -> list[Row]:
    """One row per ``group`` over the ``ok`` records: metric means, stds over repeats, first repeat's rest."""
    by_group: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record.get("status") == "ok":  # records of other data are never repeats of each other
            key = f"{record.get('group') or record['id']}:{record.get('data_id') or ''}"
            by_group.setdefault(key, []).append(record)
    rows = []
    for members in by_group.values():
        members.sort(key=lambda r: r.get("repeat", 0))
        first = members[0]
        group = first.get("group") or first["id"]
        names = list(dict.fromkeys(k for r in members for k in (r.get("metrics") or {})))
        means: dict[str, float | None] = {}
        stds: dict[str, float | None] = {}
        for name in names:
            values = [float(v) for r in members if _is_number(v := (r.get("metrics") or {}).get(name))]
            means[name] = sum(values) / len(values) if values else None
            stds[name] = _sample_std(values)
        axes = {k: axis_label(k, v) for k, v in (first.get("axes") or {}).items()}
        rows.append(Row(id=first["id"], group=group, n=len(members), axes=axes,
                        config=first.get("config") or {}, metrics=means, std=stds,
                        details=first.get("details") or {}, env_id=_text(first.get("env_id")),
                        data_id=_text(first.get("data_id")), proposed_by=_text(first.get("proposed_by"))))
    return rows


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _sample_std(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def twin_key(config: dict[str, Any]) -> str:
    """What a trial's fp32 twin shares with it: the config with precision fp32, no quantize, no seed."""
    twin = copy.deepcopy(config)
    twin.pop("seed", None)
    twin.pop("quantize", None)
    twin["precision"] = "fp32"
    return canonical_json(twin)


def family_key(config: dict[str, Any]) -> str:
    return canonical_json({"family": config.get("model", {}).get("family"), "data": config.get("data")})


def data_key(row: Row) -> str:
    """Rows trained on the same data share this: its config and, where recorded, its fingerprint."""
    return canonical_json({"data": row.config.get("data"), "data_id": row.data_id})


def add_quality(rows: list[Row], min_quality: float) -> None:
    """Set ``auc_delta_vs_fp32`` and the quality and noise flags on every row (in place)."""
    fp32 = [r for r in rows if r.config.get("precision") == "fp32" and _is_number(r.metrics.get("auc"))]
    twins = {twin_key(r.config): r for r in fp32}
    best: dict[str, float] = {}
    for r in fp32:
        key = family_key(r.config)
        best[key] = max(best.get(key, -math.inf), float(r.metrics["auc"]))  # type: ignore[arg-type]
    best_on_data: dict[str, float] = {}
    for r in rows:
        if _is_number(auc := r.metrics.get("auc")):
            best_on_data[data_key(r)] = max(best_on_data.get(data_key(r), -math.inf), float(auc))  # type: ignore
    for row in rows:
        auc = row.metrics.get("auc")
        twin = twins.get(twin_key(row.config))
        if _is_number(auc) and twin is not None:
            twin_auc = float(twin.metrics["auc"])  # type: ignore[arg-type]
            row.metrics["auc_delta_vs_fp32"] = auc - twin_auc  # type: ignore[operator]
            if auc < TWIN_SHARE * twin_auc:  # type: ignore[operator]
                row.flags.append("below-twin")
        if _is_number(auc) and _low_quality(float(auc), best.get(family_key(row.config)),  # type: ignore[arg-type]
                                             best_on_data[data_key(row)], min_quality):
            row.flags.append("low-quality")
        if noise_reasons(row):
            row.flags.append("noisy")


def _low_quality(auc: float, family_best: float | None, data_best: float, min_quality: float) -> bool:
    return (auc < CHANCE_AUC or data_best - auc > FAR_BELOW_BEST
            or (family_best is not None and auc < min_quality * family_best))


def headline_batch(row: Row) -> int | None:
    """The batch size the un-suffixed latency metrics describe (serve.batch_size_for_objective or the first)."""
    serve = row.config.get("serve") or {}
    batch = serve.get("batch_size_for_objective") or (serve.get("batch_sizes") or [None])[0]
    return int(batch) if isinstance(batch, int) else None


def noise_reasons(row: Row) -> list[str]:
    """Why this row's latency is not stable (empty when it is): probe drift, round spread, a heavy tail."""
    reasons = []
    for name in ("probe_drift", "round_spread"):
        value = row.metrics.get(name)
        if _is_number(value) and abs(value) > NOISY_DRIFT:  # type: ignore[arg-type]
            reasons.append(f"{name} {value:.2f}")
    p50, p99 = row.metrics.get("p50_ms"), row.metrics.get("p99_ms")
    if _is_number(p50) and _is_number(p99) and p50 > 0 and p99 / p50 > TAIL_RATIO:  # type: ignore[operator]
        reasons.append(f"p99 {p99 / p50:.0f}x p50")  # type: ignore[operator]
    latency = row.details.get("latency")
    per_batch = latency.get("batch_sizes") if isinstance(latency, dict) else None
    batch = headline_batch(row)
    stats = per_batch.get(str(batch)) if isinstance(per_batch, dict) and batch is not None else None
    rounds = stats.get("round_p99s_ms") if isinstance(stats, dict) else None
    if isinstance(rounds, list) and len(rounds) >= 2 and all(_is_number(v) and v > 0 for v in rounds):
        spread = max(rounds) / min(rounds) - 1
        if spread > ROUND_P99_SPREAD:
            reasons.append(f"rounds' p99s {spread:.0%} apart")
    return reasons


def flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists stay values (shown as JSON by the writers)."""
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            flat.update(flatten(item, f"{name}."))
        else:
            flat[name] = item
    return flat
