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

from costbench.record import NOISY_DRIFT
from costbench.spec import canonical_json

TWIN_SHARE = 0.99  # MLPerf: a low-precision model must keep >= 99% of its fp32 twin's quality

FLAGS = {
    "below-twin": f"AUC below {TWIN_SHARE:.0%} of its fp32 twin (same config, precision fp32)",
    "low-quality": "AUC below --min-quality x the best fp32 AUC of its model family on the same data",
    "noisy": f"latency probe drifted, or the rounds' p50s differed, by more than {NOISY_DRIFT:.0%} while timing "
             "(numbers are noisy)",
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
            serve = self.config.get("serve", {})
            batch = serve.get("batch_size_for_objective") or (serve.get("batch_sizes") or [None])[0]
            if batch:
                stats[int(batch)] = {k: float(v) for k in ("p50_ms", "p99_ms", "throughput")
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
        if record.get("status") == "ok":
            by_group.setdefault(record.get("group") or record["id"], []).append(record)
    rows = []
    for group, members in by_group.items():
        members.sort(key=lambda r: r.get("repeat", 0))
        first = members[0]
        names = list(dict.fromkeys(k for r in members for k in (r.get("metrics") or {})))
        means: dict[str, float | None] = {}
        stds: dict[str, float | None] = {}
        for name in names:
            values = [float(v) for r in members if _is_number(v := (r.get("metrics") or {}).get(name))]
            means[name] = sum(values) / len(values) if values else None
            stds[name] = _sample_std(values)
        rows.append(Row(id=first["id"], group=group, n=len(members), axes=dict(first.get("axes") or {}),
                        config=first.get("config") or {}, metrics=means, std=stds,
                        details=first.get("details") or {}))
    return rows


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


def add_quality(rows: list[Row], min_quality: float) -> None:
    """Set ``auc_delta_vs_fp32`` and the quality and noise flags on every row (in place)."""
    fp32 = [r for r in rows if r.config.get("precision") == "fp32" and _is_number(r.metrics.get("auc"))]
    twins = {twin_key(r.config): r for r in fp32}
    best: dict[str, float] = {}
    for r in fp32:
        key = family_key(r.config)
        best[key] = max(best.get(key, -math.inf), float(r.metrics["auc"]))  # type: ignore[arg-type]
    for row in rows:
        auc = row.metrics.get("auc")
        twin = twins.get(twin_key(row.config))
        if _is_number(auc) and twin is not None:
            twin_auc = float(twin.metrics["auc"])  # type: ignore[arg-type]
            row.metrics["auc_delta_vs_fp32"] = auc - twin_auc  # type: ignore[operator]
            if auc < TWIN_SHARE * twin_auc:  # type: ignore[operator]
                row.flags.append("below-twin")
        reference = best.get(family_key(row.config))
        if _is_number(auc) and reference is not None and auc < min_quality * reference:  # type: ignore[operator]
            row.flags.append("low-quality")
        unstable = [row.metrics.get(name) for name in ("probe_drift", "round_spread")]
        if any(_is_number(x) and abs(x) > NOISY_DRIFT for x in unstable):  # type: ignore[arg-type]
            row.flags.append("noisy")


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
