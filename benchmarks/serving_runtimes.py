"""Which serving runtime is fastest for costbench's networks, and how far is each from the machine's limit?

For mlp s and m (fp32 weights, random: latency does not read them), each runtime of ``costbench.runtimes``
serves the same model: ``eager`` PyTorch, ``compile`` (torch.compile), ``ort`` (the ONNX export in ONNX
Runtime), ``ort_int8`` (ONNX Runtime's dynamic int8, ``quantize.scheme: ort_dynamic``) and ``ort_static``
(its static QDQ int8, ``ort_static``, calibrated here on the benchmark's own synthetic rows); ``torchao_int8``
(torchao int8 dynamic, compiled, costbench's torch int8 default) can be added with ``--runtimes``. Each is
timed by costbench's own ``measure_latency`` (the trial's timer) at batch 1 and 256, in interleaved rounds
whose order rotates; the table gives the median p50 per point and its speed-up over eager fp32 measured in
the same run. At batch >= 64 it also gives the achieved GFLOP/s (``costbench.flops``: the model's
matrix-product FLOPs per row x rows / p50) and ``flops_efficiency``, that over the peak of the precision.

Before the table, the fp32 and int8 GEMM peaks of the cores the run uses (``costbench.measure.roofline``:
256^3 products, best of 30, per kernel: torch's BLAS, numpy's BLAS, ONNX Runtime's MatMul; torch._int_mm,
ONNX Runtime's MatMulInteger), so a reader can tell whether eager PyTorch is below the machine's peak
because of the kernel it dispatches to. After it, the done-when ratios: ORT over eager at batch 1 (p50) and
at batch 256 (throughput), fp32 and the best int8 runtime.

    With ``--server MODEL:RUNTIME`` (e.g. ``mlp:s:ort``) it then runs costbench's LoadGen server scenario on that
model and the same QPS bisection with a hand-written Poisson load loop into the same dynamic batcher (latency =
completion - scheduled arrival, p99 over at least 662 samples), and prints both QPS at the SLO and their ratio.

    PYTHONPATH=. python benchmarks/serving_runtimes.py --threads 1 [--server mlp:s:ort --slo-ms 20]

``benchmarks/ort_profile.py`` gives the per-operator profile behind these figures.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from benchmarks.latency_agreement import SCHEMA, example_split
from costbench.families import FitSummary, Fitted
from costbench.flops import forward_flops
from costbench.measure.latency import measure_latency
from costbench.measure.roofline import achieved_gflops, flops_efficiency, gemm_peaks
from costbench.model_presets import resolve_hparams
from costbench.models import build_model, count_params
from costbench.record_metrics import ROOFLINE_MIN_BATCH
from costbench.runtimes import get_runtime
from costbench.runtimes.loadgen import P99_MIN_QUERIES, Batcher, bisect_qps, run_scenario
from costbench.spec import ModelConfig, QuantizeConfig, ServeConfig, TrialConfig

CPU = torch.device("cpu")
# benchmark name -> (serve.runtime, precision, quantize.scheme)
RUNTIMES: dict[str, tuple[str, str, str]] = {
    "eager": ("eager", "fp32", "dynamic"),
    "compile": ("compile", "fp32", "dynamic"),
    "ort": ("onnxruntime", "fp32", "dynamic"),
    "ort_int8": ("onnxruntime", "int8", "ort_dynamic"),
    "ort_static": ("onnxruntime", "int8", "ort_static"),
    "torchao_int8": ("eager", "int8", "dynamic"),
}


# ------------------------------------------------------------------------------------------ runtimes


def serve(kind: str, model: torch.nn.Module, split: Any, batch_sizes: list[int]) -> Any:
    """``model`` (a copy) served by the benchmark runtime ``kind`` through ``costbench.runtimes``."""
    runtime, precision, scheme = RUNTIMES[kind]
    cfg = TrialConfig(serve=ServeConfig(runtime=runtime, batch_sizes=batch_sizes), precision=precision,
                      quantize=QuantizeConfig(scheme=scheme))
    reason = get_runtime(runtime).skip_reason(cfg, CPU, "mlp")
    if reason:
        raise SystemExit(f"{kind}: {reason}")
    copied = copy.deepcopy(model)
    fitted = Fitted(model=copied, hparams={}, params=count_params(copied), summary=FitSummary(None, None, "n/a"))
    return get_runtime(runtime).serve(fitted, SimpleNamespace(train=split, test=split), cfg, CPU)


def poisson_p99_ms(served: Any, split: Any, serve: ServeConfig, qps: float, rng: np.random.Generator) -> float:
    """p99 (ms) of Poisson arrivals at ``qps`` into the dynamic batcher: the hand-written reference."""
    latencies: list[float] = []

    def run(batch: list[tuple[float, int]]) -> None:
        index = torch.tensor([i for _, i in batch], dtype=torch.long)
        served.predict(*served.stage(split, index))
        now = time.perf_counter()
        latencies.extend(now - scheduled for scheduled, _ in batch)

    batcher = Batcher(run, serve.max_batch, serve.max_wait_ms / 1000)
    count = max(P99_MIN_QUERIES, int(qps * serve.scenario_seconds))
    arrivals = time.perf_counter() + np.cumsum(rng.exponential(1 / qps, count))
    rows = rng.integers(0, len(split.label), count)
    for scheduled, row in zip(arrivals, rows, strict=True):
        while (left := scheduled - time.perf_counter()) > 0:
            time.sleep(left if left > 2e-4 else 0)
        batcher.add([(float(scheduled), int(row))])
    batcher.stop()
    return float(np.percentile(latencies, 99)) * 1000


def server_agreement(spec: str, split: Any, slo_ms: float, steps: int) -> None:
    """LoadGen's QPS at the SLO against the hand-written Poisson loop's, same batcher and search."""
    family, size, kind = spec.split(":")
    torch.manual_seed(0)
    model = build_model(resolve_hparams(ModelConfig(family=family, size=size)), SCHEMA).eval()
    served = serve(kind, model, split, [1])
    cfg = ServeConfig(scenario="server", slo_ms=slo_ms, max_batch=64, max_wait_ms=2.0, scenario_seconds=1.0,
                      search_steps=steps)
    ours = run_scenario(served.predict, served.stage, split, cfg)
    rng = np.random.default_rng(0)
    peak = ours["offline_samples_per_s"]
    _, best = bisect_qps(peak, steps, lambda qps: ((p99 := poisson_p99_ms(served, split, cfg, qps, rng)) <= slo_ms,
                                                   {"p99_ms": p99}))
    theirs = best["target_qps"] if best else None
    print(f"server {spec} slo {slo_ms} ms, max_batch 64, max_wait 2 ms, {steps} steps from offline "
          f"{peak:.0f}/s: LoadGen {ours['max_qps_at_slo']} QPS (p99 {ours['p99_at_slo_ms']} ms, "
          f"{ours['verdict']}); hand-written {theirs} QPS (p99 {best['p99_ms'] if best else None} ms); ratio "
          + (f"{ours['max_qps_at_slo'] / theirs:.2f}" if ours["max_qps_at_slo"] and theirs else "n/a"))
    for run in ours["runs"]:
        print(f"  LoadGen {run['target_qps']:.0f} QPS: {run['verdict']} p99 {run['p99_ms']} ms "
              f"{'; '.join(run['invalid_because'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp:s,mlp:m")
    parser.add_argument("--runtimes", default="eager,compile,ort,ort_int8,ort_static", help=",".join(RUNTIMES))
    parser.add_argument("--batch-sizes", default="1,256")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=0.3, help="per measurement")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--server", default=None, help="family:size:runtime for the LoadGen agreement check")
    parser.add_argument("--slo-ms", type=float, default=20.0)
    parser.add_argument("--search-steps", type=int, default=6)
    parser.add_argument("--server-only", action="store_true", help="skip the runtime table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    kinds, batches = args.runtimes.split(","), [int(b) for b in args.batch_sizes.split(",")]
    if "eager" not in kinds:
        raise SystemExit("--runtimes must include eager: every ratio is against it")
    split = example_split(4096)
    if args.server:
        server_agreement(args.server, split, args.slo_ms, args.search_steps)
    if args.server_only:
        return

    peaks = gemm_peaks(torch.get_num_threads())
    print(f"threads={torch.get_num_threads()} torch {torch.__version__} onnxruntime {_ort_version()}; GEMM peak "
          f"({peaks['what']}):")
    for precision, unit in (("fp32", "GFLOP/s"), ("int8", "GOP/s")):
        found = peaks[precision]
        kernels = "  ".join(f"{name} {value:.0f}" for name, value in found["by_kernel"].items())
        print(f"  {precision} {unit}: {kernels}  -> peak {found['gflops']:.0f} ({found['kernel']})")

    p50s: dict[tuple[str, str, int], list[float]] = {}
    setup: dict[tuple[str, str], float] = {}
    flops: dict[str, int | None] = {}
    for name in args.models.split(","):
        family, size = name.split(":")
        torch.manual_seed(0)
        model = build_model(resolve_hparams(ModelConfig(family=family, size=size)), SCHEMA).eval()
        flops[name] = forward_flops(model)
        served = {}
        for kind in kinds:
            served[kind] = serve(kind, model, split, batches)
            setup[(name, kind)] = served[kind].prepare_seconds + served[kind].compile_seconds
        for r in range(args.rounds):
            order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
            for kind in order:
                s = served[kind]
                cfg = ServeConfig(batch_sizes=batches, warmup=20, min_calls=662, min_seconds=args.min_seconds,
                                  rounds=1)
                result = measure_latency(s.predict, split, cfg, CPU, stage=s.stage)
                for b in batches:
                    p50s.setdefault((name, kind, b), []).append(result["batch_sizes"][str(b)]["p50_ms"])

    p50 = {key: statistics.median(values) for key, values in p50s.items()}
    print(f"{'model':<8}{'batch':>6}{'runtime':>12}{'p50 us':>11}{'x eager':>9}{'rows/s':>12}{'GFLOP/s':>9}"
          f"{'of peak':>9}{'setup s':>9}")
    for name in args.models.split(","):
        for b in batches:
            for kind in kinds:
                t = p50[(name, kind, b)]
                gflops = achieved_gflops(flops[name], b, t) if b >= ROOFLINE_MIN_BATCH else None
                peak = peaks[RUNTIMES[kind][1]]["gflops"]
                efficiency = flops_efficiency(gflops, peak)
                print(f"{name:<8}{b:>6}{kind:>12}{t * 1000:>11.1f}{p50[(name, 'eager', b)] / t:>9.2f}"
                      f"{b / (t / 1000):>12.0f}{_fmt(gflops, '.1f'):>9}{_fmt(efficiency, '.0%'):>9}"
                      f"{setup[(name, kind)]:>9.1f}")
    int8 = [k for k in kinds if RUNTIMES[k][1] == "int8" and RUNTIMES[k][0] == "onnxruntime"]
    for name in args.models.split(","):
        parts = []
        for b in batches:
            if "ort" in kinds:
                parts.append(f"ORT fp32 x{p50[(name, 'eager', b)] / p50[(name, 'ort', b)]:.2f} at batch {b}")
            if int8:
                best = min(int8, key=lambda k: p50[(name, k, b)])
                parts.append(f"best ORT int8 ({best}) x{p50[(name, 'eager', b)] / p50[(name, best, b)]:.2f}")
        print(f"{name} vs eager fp32 (p50 ratio = throughput ratio per call): " + "; ".join(parts))


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


if __name__ == "__main__":
    main()
