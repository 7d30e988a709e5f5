"""How much of the full grid's Pareto front a `search` finds with a third of the trials.

Runs the full grid of a sweep once (``costbench sweep FILE --set search=null``, real trials), then
replays each sampler (tpe, nsga2, random) with 3 seeds over the grid's recorded points: Optuna asks,
the "executor" answers with the grid's own record of that point. Replaying keeps the comparison about
the sampler: the grid and every search see the same measured figures (no latency noise between them).

Hypervolume: every objective is turned into a minimisation (max objectives negated) and scaled to
[0, 1] by the grid's own min and max; the reference point is 1.1 on every axis (stated in the output).
Goal (issue 19): with n_trials = a third of the grid, TPE reaches >= 90% of the full grid's hypervolume
on each of 3 seeds.

Usage: python benchmarks/search_efficiency.py [--sweep sweeps/search.yaml] [--grid-run DIR] [--workers N]
(--grid-run reuses a grid already run: `costbench sweep sweeps/search.yaml --set search=null --out DIR`)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from costbench.search import objective_values, run_search
from costbench.spec import load_sweep, parse_objective
from costbench.spec.schema import SearchConfig
from costbench.store import latest_records, read_records

REFERENCE = 1.1
GOAL = 0.9
SEEDS = (0, 1, 2)


def hypervolume(points: Sequence[Sequence[float]], ref: Sequence[float]) -> float:
    """The exact volume minimisation points dominate below ``ref`` (slicing on the last objective)."""
    pts = [tuple(p) for p in points if all(v < r for v, r in zip(p, ref, strict=True))]
    if not pts:
        return 0.0
    if len(ref) == 1:
        return ref[0] - min(p[0] for p in pts)
    pts.sort(key=lambda p: p[-1])
    volume = 0.0
    for i, point in enumerate(pts):
        top = pts[i + 1][-1] if i + 1 < len(pts) else ref[-1]
        if top > point[-1]:
            volume += (top - point[-1]) * hypervolume([p[:-1] for p in pts[:i + 1]], ref[:-1])
    return volume


def scaled(values: dict[str, list[float]], objectives: Sequence[str]) -> dict[str, list[float]]:
    """Each point's objectives as minimisations scaled to [0, 1] by the grid's range."""
    signs = [-1.0 if parse_objective(o)[1] == "max" else 1.0 for o in objectives]
    signed = {k: [s * v for s, v in zip(signs, vs, strict=True)] for k, vs in values.items()}
    lows = [min(v[i] for v in signed.values()) for i in range(len(objectives))]
    highs = [max(v[i] for v in signed.values()) for i in range(len(objectives))]
    return {k: [(x - lo) / ((hi - lo) or 1.0) for x, lo, hi in zip(v, lows, highs, strict=True)]
            for k, v in signed.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="sweeps/search.yaml")
    parser.add_argument("--grid-run", type=Path)
    parser.add_argument("--workers", type=int, default=2, help="grid run workers; also the search's batch size")
    args = parser.parse_args(argv)

    run_dir = args.grid_run or Path(tempfile.mkdtemp(prefix="search-grid-"))
    if args.grid_run is None:
        command = ["costbench", "sweep", args.sweep, "--set", "search=null", "--out", str(run_dir),
                   "--workers", str(args.workers), "--allow-failures"]
        print("grid:", " ".join(command), flush=True)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    sweep = load_sweep(Path(args.sweep))
    trials, objectives = sweep.trials, list(sweep.spec.objectives)
    latest = latest_records(read_records(run_dir)[0])
    by_group: dict[str, list[dict[str, Any]]] = {}
    for trial in trials:
        if trial.id in latest:
            by_group.setdefault(trial.group, []).append(latest[trial.id])
    values = {g: v for g, recs in by_group.items() if (v := objective_values(recs, objectives)) is not None}
    points = len({t.group for t in trials})
    if len(values) < points:
        print(f"note: {points - len(values)} of {points} grid points have no value for every objective "
              "(failed, skipped or n/a); they count as failed for the samplers too")
    norm = scaled(values, objectives)
    ref = [REFERENCE] * len(objectives)
    full = hypervolume(list(norm.values()), ref)
    budget = max(1, points // 3)
    print(f"space: {points} grid points ({args.sweep}); objectives {', '.join(objectives)}")
    print(f"hypervolume: objectives as minimisations scaled to [0, 1] by the grid's range, reference point "
          f"{REFERENCE} on each; full grid {full:.4f}")
    print(f"search budget: {budget} points (a third), batches of {args.workers}")
    results: dict[str, list[float]] = {}
    for sampler in ("tpe", "nsga2", "random"):
        for seed in SEEDS:
            seen: dict[str, dict[str, Any]] = {}

            def answer(batch: list[Any], seen: dict[str, dict[str, Any]] = seen) -> bool:
                for trial in batch:
                    seen[trial.id] = latest.get(trial.id, {"id": trial.id, "status": "failed", "metrics": {}})
                return True

            config = SearchConfig(sampler=sampler, n_trials=budget, seed=seed)
            search = run_search(config, objectives, trials, lambda seen=seen: dict(seen), answer, args.workers)
            groups = {t.group for t in trials if t.id in seen}
            found = hypervolume([norm[g] for g in groups if g in norm], ref)
            results.setdefault(sampler, []).append(found / full if full else 0.0)
            print(f"  {sampler:<6} seed {seed}: {len(groups)} points run ({len(search.study.trials)} Optuna "
                  f"trials told), hypervolume {found:.4f} = {found / full:.1%} of the grid's")
    for sampler, ratios in results.items():
        print(f"{sampler:<6} mean {sum(ratios) / len(ratios):.1%}, worst {min(ratios):.1%} of the grid's "
              f"hypervolume with {budget}/{points} points")
    ok = min(results["tpe"]) >= GOAL
    print(f"goal: tpe >= {GOAL:.0%} on every seed: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
