"""Does costbench's LoadGen server scenario find the QPS a plain Poisson load finds at the same SLO?

For each model, MLPerf LoadGen (costbench's server scenario) and a hand-written load loop search for the
highest QPS with p99 <= the SLO. Everything but the load generator is shared: the served model and its row
staging (``loadgen.rows_server``), the dynamic batcher (``batcher.Batcher``), the search (``loadgen.QpsSearch``
from the same offline peak), the query count per run (max(662, QPS x seconds)), Poisson arrivals issued the
same way (sleep until the next is due, then everything due at once: LoadGen's ``server_coalesce_queries``),
latency = completion - scheduled arrival, and LoadGen's p99 (the sorted latency at index int(0.99 n)). LoadGen
also has to call it VALID. What differs: LoadGen schedules in C++ and calls back into Python per (coalesced)
query, and is told per batch through its Python binding; the hand loop issues from a Python thread.

First one ``run_scenario`` as a trial runs it (its result and wall time). Then ``--repeats`` times three
searches, run step by step in turn so all see the same machine load: LoadGen, the hand loop, and the hand
loop again (``hand2``), each step in one of the six orders in turn, so each search runs after each other one
equally often (whatever a run leaves behind weighs on all alike). The
ratios LoadGen / hand and LoadGen / hand2 per repeat and their medians are the agreement (goal: 0.9-1.1);
hand2 / hand is the noise floor, what the machine alone makes of two identical searches. Last, LoadGen's
own cost: at one QPS below both knees (``--overhead-fraction`` of the hand loop's median QPS), LoadGen and
hand runs in turn, with the process CPU time per sample of each.

    PYTHONPATH=. python benchmarks/loadgen_agreement.py --models mlp:xs:ort,mlp:s:ort --slo-ms 20
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from benchmarks.latency_agreement import SCHEMA, example_split
from benchmarks.serving_runtimes import serve
from costbench.model_presets import resolve_hparams
from costbench.models import build_model
from costbench.runtimes.batcher import Batcher
from costbench.runtimes.loadgen import (
    P99_MIN_QUERIES,
    QpsSearch,
    meets_slo,
    offline_rate,
    one_run,
    rows_server,
    run_scenario,
)
from costbench.spec import ModelConfig, ServeConfig

SEARCHES = ("loadgen", "hand", "hand2")  # hand2: the same hand loop again, so the spread of hand2/hand is noise
ORDERS = list(itertools.permutations(SEARCHES))  # each search runs after each other one equally often


def loadgen_p99(latencies: list[float]) -> float:
    """LoadGen's percentile: the sorted sample at index int(0.99 x count)."""
    ordered = sorted(latencies)
    return ordered[int(len(ordered) * 0.99)]


def hand_run(serve_rows: Callable[[list[int]], None], rows: int, cfg: ServeConfig, qps: float,
             rng: np.random.Generator) -> dict[str, Any]:
    """Poisson arrivals at ``qps`` from this thread into the batcher, issued as LoadGen's server scenario
    issues them (sleep until the next arrival is due, then hand over every arrival already due at once, as
    ``server_coalesce_queries`` does): p99 (ms) and CPU seconds per sample."""
    latencies: list[float] = []

    def run(batch: list[tuple[float, int]]) -> None:
        serve_rows([index for _, index in batch])
        done = time.perf_counter()
        latencies.extend(done - scheduled for scheduled, _ in batch)

    count = max(P99_MIN_QUERIES, int(qps * cfg.scenario_seconds))
    gaps, indices = rng.exponential(1 / qps, count), rng.integers(0, rows, count).tolist()
    cpu = time.process_time()
    batcher = Batcher(run, cfg.max_batch, cfg.max_wait_ms / 1000)
    arrivals = (time.perf_counter() + np.cumsum(gaps)).tolist()
    first = 0
    while first < count:
        if (left := arrivals[first] - time.perf_counter()) > 0:
            time.sleep(left)
        now, last = time.perf_counter(), first + 1
        while last < count and arrivals[last] <= now:
            last += 1
        batcher.add(list(zip(arrivals[first:last], indices[first:last], strict=True)))
        first = last
    batcher.stop()
    return {"p99_ms": loadgen_p99(latencies) * 1000, "cpu_us_per_sample": (time.process_time() - cpu) / count * 1e6}


def loadgen_run(serve_rows: Callable[[list[int]], None], rows: int, cfg: ServeConfig, qps: float) -> dict[str, Any]:
    """One LoadGen server run at ``qps``, as ``run_scenario``'s search makes it, with CPU seconds per sample."""
    import mlperf_loadgen as lg

    cpu = time.process_time()
    run = one_run(lg, serve_rows, rows, "server", cfg, qps=qps, out_dir=None)
    count = max(P99_MIN_QUERIES, int(qps * cfg.scenario_seconds))
    return {**run, "cpu_us_per_sample": (time.process_time() - cpu) / count * 1e6}


def agreement(spec: str, cfg: ServeConfig, repeats: int, overhead_fraction: float) -> None:
    """LoadGen's QPS at the SLO against the hand loop's, ``repeats`` times; then LoadGen's CPU cost."""
    import mlperf_loadgen as lg

    family, size, kind = spec.split(":")
    split = example_split(4096)
    torch.manual_seed(0)
    model = build_model(resolve_hparams(ModelConfig(family=family, size=size)), SCHEMA).eval()
    served = serve(kind, model, split, [1])
    serve_rows, rows = rows_server(served.predict, served.stage, split), len(split.label)
    rng = np.random.default_rng(0)
    print(f"{spec}: slo {cfg.slo_ms:g} ms, max_batch {cfg.max_batch}, max_wait {cfg.max_wait_ms:g} ms, "
          f"{cfg.search_steps} steps of {cfg.scenario_seconds:g} s")

    start = time.perf_counter()
    ours = run_scenario(served.predict, served.stage, split, cfg)
    print(f"  run_scenario: {_num(ours['max_qps_at_slo'])} QPS at p99 {_num(ours['p99_at_slo_ms'], '.1f')} ms "
          f"({ours['verdict']}) in {time.perf_counter() - start:.1f} s; tries {_trail(ours['runs'], cfg.slo_ms)}")

    ratios: dict[str, list[float]] = {"loadgen/hand": [], "loadgen/hand2": [], "hand2/hand": []}
    hands = []
    for repeat in range(repeats):
        peak = offline_rate(lg, serve_rows, rows, cfg, None)
        searches = {who: QpsSearch(peak) for who in SEARCHES}
        for step in range(cfg.search_steps):  # the searches step by step, so all see the same machine load
            for who in ORDERS[(repeat * cfg.search_steps + step) % len(ORDERS)]:
                search = searches[who]
                _settle()
                if who == "loadgen":
                    run = loadgen_run(serve_rows, rows, cfg, search.qps)
                else:
                    run = {**hand_run(serve_rows, rows, cfg, search.qps, rng), "valid": True}
                search.tell(meets_slo(run, cfg.slo_ms), run)
        best = {who: search.best["target_qps"] if search.best else None for who, search in searches.items()}
        for who, search in searches.items():
            print(f"  repeat {repeat} {who:>8}: {_num(best[who])} QPS at p99 "
                  f"{_num(search.best and search.best['p99_ms'], '.1f')} ms; tries {_trail(search.runs, cfg.slo_ms)}")
        now = {name: best[top] / best[bottom] if best[top] and best[bottom] else None
               for name in ratios for top, bottom in [name.split("/")]}
        for name, ratio in now.items():
            if ratio is not None:
                ratios[name].append(ratio)
        if best["hand"]:
            hands.append(best["hand"])
        print(f"  repeat {repeat} from offline {peak:.0f}/s: "
              + ", ".join(f"{name} {_num(ratio, '.2f')}" for name, ratio in now.items()))
    for name, values in ratios.items():
        print(f"{spec}: median {name} {_num(statistics.median(values) if values else None, '.2f')} over "
              f"{len(values)} repeats ({', '.join(f'{r:.2f}' for r in values)})"
              + ("  <- the noise floor: two identical hand loops" if name == "hand2/hand" else ""))
    if not hands:
        return
    qps = overhead_fraction * statistics.median(hands)
    lg_runs, hand_runs = [], []
    for repeat in range(repeats):
        for who in (("loadgen", "hand") if repeat % 2 == 0 else ("hand", "loadgen")):
            _settle()
            if who == "loadgen":
                lg_runs.append(loadgen_run(serve_rows, rows, cfg, qps))
            else:
                hand_runs.append(hand_run(serve_rows, rows, cfg, qps, rng))
    lg_cpu = statistics.median(r["cpu_us_per_sample"] for r in lg_runs)
    hand_cpu = statistics.median(r["cpu_us_per_sample"] for r in hand_runs)
    print(f"{spec}: at {qps:.0f} QPS, CPU per sample (median of {repeats}): LoadGen {lg_cpu:.1f} us "
          f"(p99 {', '.join(_num(r['p99_ms'], '.1f') for r in lg_runs)} ms; "
          f"{', '.join(r['verdict'] for r in lg_runs)}), hand {hand_cpu:.1f} us "
          f"(p99 {', '.join(_num(r['p99_ms'], '.1f') for r in hand_runs)} ms); LoadGen's extra "
          f"{lg_cpu - hand_cpu:.1f} us ({(lg_cpu - hand_cpu) / hand_cpu:+.0%})")


def _settle() -> None:
    """Before each run: no run pays for the garbage or the log writing of the one before it."""
    gc.collect()
    time.sleep(0.2)


def _trail(runs: list[dict[str, Any]], slo_ms: float) -> str:
    """Each try as QPS and + (met the SLO), - (did not) or ! (p99 within the SLO but LoadGen said INVALID)."""
    def mark(run: dict[str, Any]) -> str:
        if meets_slo({"valid": True, **run}, slo_ms):
            return "+"
        return "!" if meets_slo({**run, "valid": True}, slo_ms) else "-"
    return " ".join(f"{r['target_qps']:.0f}{mark(r)}" for r in runs)


def _num(value: float | None, fmt: str = ".0f") -> str:
    return "n/a" if value is None else format(value, fmt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp:xs:ort,mlp:s:ort", help="family:size:runtime, comma-separated")
    parser.add_argument("--slo-ms", type=float, default=20.0)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=1.0, help="serve.scenario_seconds of each run")
    parser.add_argument("--search-steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--overhead-fraction", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = ServeConfig(scenario="server", slo_ms=args.slo_ms, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                      scenario_seconds=args.seconds, search_steps=args.search_steps)
    for spec in args.models.split(","):
        agreement(spec, cfg, args.repeats, args.overhead_fraction)


if __name__ == "__main__":
    main()
