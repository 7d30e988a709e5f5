"""What distillation and pruning bought in a run of sweeps/compression.yaml, from its records alone.

    python benchmarks/compression_gain.py results/examples/compression

Prints, for every distilled configuration: the teacher's test AUC, the scratch student's and the
distilled student's AUC (mean and 95% t-interval over the repeats), the teacher-over-scratch gap and
the share of it the distilled student closes. Repeats are paired by seed (repeat k of both ran on the
same seed), so the interval of the gain is the paired one; the share's interval divides the gain's
interval by the gap (the teacher is one fixed model; the scratch mean's own noise is not propagated).
For every pruned configuration: parameters and p50 before and after, and AUC beside the scratch
model of the pruned shape, and p50 before and after per batch size (before: the unpruned model timed in
the same trial). Reads trials.jsonl only (no torch); the pairing is the report's
(``costbench.report.compression``).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from scipy import stats

from costbench.report.build import build_report
from costbench.report.compression import comparisons


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (0 for a single value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5


def per_seed(records: list[dict[str, Any]], group: str, metric: str) -> dict[int, float]:
    return {r["config"]["seed"]: r["metrics"][metric] for r in records
            if r["group"] == group and r["status"] == "ok" and r["metrics"].get(metric) is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    run = parser.parse_args().run
    records = [json.loads(line) for line in (run / "trials.jsonl").read_text().splitlines() if line.strip()]
    report = build_report(run)
    for c in comparisons(report.rows):
        if c.scratch is None:
            print(f"{c.row.id} {c.what}: no same-shape scratch trial in this run")
            continue
        student, scratch = per_seed(records, c.row.group, "auc"), per_seed(records, c.scratch.group, "auc")
        seeds = sorted(set(student) & set(scratch))
        s_mean, s_half = interval([scratch[k] for k in seeds])
        d_mean, d_half = interval([student[k] for k in seeds])
        g_mean, g_half = interval([student[k] - scratch[k] for k in seeds])
        print(f"{c.row.id} {c.what} ({c.row.config.get('precision')}, {len(seeds)} paired repeats)")
        print(f"  scratch {c.scratch.id}: AUC {s_mean:.4f} ± {s_half:.4f}")
        print(f"  compressed:          AUC {d_mean:.4f} ± {d_half:.4f}; gain {g_mean:+.4f} ± {g_half:.4f}")
        teacher = c.row.metrics.get("teacher_auc")
        if teacher is not None:
            gap = teacher - s_mean
            print(f"  teacher: AUC {teacher:.4f}, gap over scratch {gap:+.4f}, teacher cost "
                  f"${c.row.metrics.get('teacher_cost_usd'):.6f}")
            if gap > 0:
                print(f"  share of the gap closed: {g_mean / gap:.0%} (95%: {(g_mean - g_half) / gap:.0%} to "
                      f"{(g_mean + g_half) / gap:.0%})")
        m = c.row.metrics
        if m.get("params_before_prune") is not None:
            before = c.unpruned.metrics.get("auc") if c.unpruned else None
            print(f"  params {m['params_before_prune']:,.0f} -> {m['params']:,.0f} "
                  f"({m['params'] / m['params_before_prune']:.0%}); p50 at the headline batch "
                  f"{m['p50_ms_before_prune']:.3f} -> {m['p50_ms']:.3f} ms; before-prune scratch AUC "
                  f"{'n/a' if before is None else f'{before:.4f}'}")
            timed = [r["details"]["prune_latency"] for r in records
                     if r["group"] == c.row.group and r["status"] == "ok" and r["details"].get("prune_latency")]
            for batch in sorted(timed[0]["after"], key=int):
                before, after = (statistics.fmean(t[when][batch]["p50_ms"] for t in timed)
                                 for when in ("before", "after"))
                print(f"    batch {batch}: p50 {before:.3f} -> {after:.3f} ms (mean of {len(timed)}; ratio "
                      f"{after / before:.2f})")
            print(f"  train cost ${m['train_cost_usd']:.6f} vs scratch ${c.scratch.metrics['train_cost_usd']:.6f}")


if __name__ == "__main__":
    main()
