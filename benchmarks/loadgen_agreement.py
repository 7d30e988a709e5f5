"""Does costbench's LoadGen server scenario find the QPS a plain Poisson load finds at the same SLO?

For each model, costbench's ``run_scenario`` (MLPerf LoadGen, server scenario) and a hand-written load loop
search for the highest QPS with p99 <= the SLO. Everything but the load generator is shared: the served
model and its row staging (``loadgen.rows_server``), the dynamic batcher (``batcher.Batcher``), the
bisection (``loadgen.bisect_qps``) from the same offline peak, the query count per run
(max(662, QPS x seconds)), Poisson arrivals, latency = completion - scheduled arrival, and LoadGen's p99
(the sorted latency at index int(0.99 n)). The hand loop issues each arrival from a Python thread; LoadGen
issues from its own scheduler, calls back into Python per (coalesced) query and is told per batch. The
searches run interleaved, ``--repeats`` times, alternating which goes first; the ratio LoadGen / hand is
printed per repeat with the median. Goal: 0.9-1.1.

Then LoadGen's own cost: at one QPS below both knees (``--overhead-fraction`` of the hand loop's median QPS),
a LoadGen run and a hand run, interleaved, with the process CPU time per sample of each.

    PYTHONPATH=. python benchmarks/loadgen_agreement.py --models mlp:xs:ort,mlp:s:ort --slo-ms 20
"""

from __future__ import annotations

import argparse
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
from costbench.runtimes.loadgen import P99_MIN_QUERIES, bisect_qps, offline_rate, one_run, rows_server, run_scenario
from costbench.spec import ModelConfig, ServeConfig


def loadgen_p99(latencies: list[float]) -> float:
    """LoadGen's percentile: the sorted sample at index int(0.99 x count)."""
    ordered = sorted(latencies)
    return ordered[int(len(ordered) * 0.99)]


def hand_run(serve_rows: Callable[[list[int]], None], rows: int, cfg: ServeConfig, qps: float,
             rng: np.random.Generator) -> dict[str, Any]:
    """Poisson arrivals at ``qps`` from this thread into the batcher: p99 (ms) and CPU seconds per sample."""
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
    for scheduled, index in zip(arrivals, indices, strict=True):
        while (left := scheduled - time.perf_counter()) > 0:
            time.sleep(left if left > 2e-4 else 0)
        batcher.add([(scheduled, index)])
    batcher.stop()
    return {"p99_ms": loadgen_p99(latencies) * 1000, "cpu_us_per_sample": (time.process_time() - cpu) / count * 1e6}


def loadgen_cpu_run(serve_rows: Callable[[list[int]], None], rows: int, cfg: ServeConfig,
                    qps: float) -> dict[str, Any]:
    """One LoadGen server run at ``qps``: its p99 and verdict, and CPU seconds per sample."""
    import mlperf_loadgen as lg

    cpu = time.process_time()
    run = one_run(lg, serve_rows, rows, "server", cfg, qps=qps, out_dir=None)
    count = max(P99_MIN_QUERIES, int(qps * cfg.scenario_seconds))
    return {**run, "cpu_us_per_sample": (time.process_time() - cpu) / count * 1e6}


def agreement(spec: str, cfg: ServeConfig, repeats: int, overhead_fraction: float) -> None:
    """LoadGen's QPS at the SLO against the hand loop's, ``repeats`` times interleaved; then LoadGen's CPU cost."""
    import mlperf_loadgen as lg

    family, size, kind = spec.split(":")
    split = example_split(4096)
    torch.manual_seed(0)
    model = build_model(resolve_hparams(ModelConfig(family=family, size=size)), SCHEMA).eval()
    served = serve(kind, model, split, [1])
    serve_rows, rows = rows_server(served.predict, served.stage, split), len(split.label)
    rng = np.random.default_rng(0)
    ratios, hands = [], []
    print(f"{spec}: slo {cfg.slo_ms:g} ms, max_batch {cfg.max_batch}, max_wait {cfg.max_wait_ms:g} ms, "
          f"{cfg.search_steps} steps of {cfg.scenario_seconds:g} s")
    for repeat in range(repeats):
        found: dict[str, Any] = {}
        for who in (("loadgen", "hand") if repeat % 2 == 0 else ("hand", "loadgen")):
            start = time.perf_counter()
            if who == "loadgen":
                ours = run_scenario(served.predict, served.stage, split, cfg)
                found[who] = {"qps": ours["max_qps_at_slo"], "p99_ms": ours["p99_at_slo_ms"], "peak":
                              ours["offline_samples_per_s"], "verdict": ours["verdict"], "seconds": ours["seconds"],
                              "runs": ours["runs"]}
            else:
                peak = found["loadgen"]["peak"] if "loadgen" in found else offline_rate(lg, serve_rows, rows, cfg,
                                                                                        None)
                runs, best = bisect_qps(peak, cfg.search_steps, lambda qps: (
                    (run := hand_run(serve_rows, rows, cfg, qps, rng))["p99_ms"] <= cfg.slo_ms, run))
                found[who] = {"qps": best["target_qps"] if best else None, "p99_ms": best["p99_ms"] if best else None,
                              "peak": peak, "verdict": "-", "seconds": time.perf_counter() - start, "runs": runs}
        lg_qps, hand_qps = found["loadgen"]["qps"], found["hand"]["qps"]
        ratio = lg_qps / hand_qps if lg_qps and hand_qps else None
        if ratio is not None:
            ratios.append(ratio)
        if hand_qps:
            hands.append(hand_qps)
        for who, got in found.items():
            trail = " ".join(f"{r['target_qps']:.0f}{'+' if _passed(r, cfg.slo_ms) else '-'}" for r in got["runs"])
            print(f"  repeat {repeat} {who:>8}: {_num(got['qps'])} QPS at p99 {_num(got['p99_ms'], '.1f')} ms "
                  f"({got['verdict']}), from offline {got['peak']:.0f}/s, {got['seconds']:.1f} s; tries {trail}")
        print(f"  repeat {repeat} ratio loadgen/hand {_num(ratio, '.2f')}")
    print(f"{spec}: median ratio loadgen/hand {_num(statistics.median(ratios) if ratios else None, '.2f')} "
          f"over {len(ratios)} repeats")
    if not hands:
        return
    qps = overhead_fraction * statistics.median(hands)
    lg_runs, hand_runs = [], []
    for repeat in range(repeats):
        for who in (("loadgen", "hand") if repeat % 2 == 0 else ("hand", "loadgen")):
            if who == "loadgen":
                lg_runs.append(loadgen_cpu_run(serve_rows, rows, cfg, qps))
            else:
                hand_runs.append(hand_run(serve_rows, rows, cfg, qps, rng))
    lg_cpu = statistics.median(r["cpu_us_per_sample"] for r in lg_runs)
    hand_cpu = statistics.median(r["cpu_us_per_sample"] for r in hand_runs)
    print(f"{spec}: at {qps:.0f} QPS, CPU per sample (median of {repeats}): LoadGen {lg_cpu:.1f} us "
          f"(p99 {', '.join(_num(r['p99_ms'], '.1f') for r in lg_runs)} ms; "
          f"{', '.join(r['verdict'] for r in lg_runs)}), hand {hand_cpu:.1f} us "
          f"(p99 {', '.join(_num(r['p99_ms'], '.1f') for r in hand_runs)} ms); LoadGen's extra "
          f"{lg_cpu - hand_cpu:.1f} us ({(lg_cpu - hand_cpu) / hand_cpu:+.0%})")


def _passed(run: dict[str, Any], slo_ms: float) -> bool:
    return run.get("valid", True) and run["p99_ms"] is not None and run["p99_ms"] <= slo_ms


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
