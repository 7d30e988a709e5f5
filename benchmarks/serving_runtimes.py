"""Which serving runtime is fastest for costbench's networks, and how far is each from the machine's limit?

For mlp s and m (fp32 weights, random: latency does not read them), each runtime of ``costbench.runtimes``
serves the same model: ``eager`` PyTorch, ``compile`` (torch.compile), ``ort`` (the ONNX export in ONNX
Runtime) and ``ort_int8`` (ONNX Runtime's dynamic int8, ``quantize.scheme: ort_dynamic``); ``torchao_int8``
(torchao int8 dynamic, compiled, costbench's torch int8 default) can be added with ``--runtimes``. Each is
timed by costbench's own ``measure_latency`` (the trial's timer) at batch 1 and 256, in interleaved rounds
whose order rotates; the table gives the median p50 per point and its speed-up over eager fp32 measured in
the same run. At batch >= 64 it also gives the achieved GFLOP/s of the dense layers (2 x rows x weights).

Before the table, the fp32 GEMM peak of the cores the run uses (2048 x 2048 MatMul, best of a few, each
kernel on its own: torch's BLAS, numpy's BLAS, ONNX Runtime's MatMul), so a reader can tell whether eager
PyTorch is below the machine's peak because of the kernel it dispatches to.

    With ``--server MODEL:RUNTIME`` (e.g. ``mlp:s:ort``) it then runs costbench's LoadGen server scenario on that
model and the same QPS bisection with a hand-written Poisson load loop into the same dynamic batcher (latency =
completion - scheduled arrival, p99 over at least 662 samples), and prints both QPS at the SLO and their ratio.

    PYTHONPATH=. python benchmarks/serving_runtimes.py --threads 1 [--server mlp:s:ort --slo-ms 20]
"""

from __future__ import annotations

import argparse
import copy
import re
import statistics
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from benchmarks.latency_agreement import SCHEMA, example_split
from costbench.families import FitSummary, Fitted
from costbench.measure.latency import measure_latency
from costbench.model_presets import resolve_hparams
from costbench.models import build_model, count_params
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
    "torchao_int8": ("eager", "int8", "dynamic"),
}


# ------------------------------------------------------------------------------------------ GEMM peak


def gemm_peaks(n: int = 2048, reps: int = 5) -> dict[str, float]:
    """GFLOP/s of one n x n fp32 MatMul, best of ``reps``, per kernel (torch, numpy, ONNX Runtime)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    kernels: dict[str, Callable[[], Any]] = {
        f"torch.mm ({_torch_blas()})": lambda: torch.mm(ta, tb),
        f"numpy @ ({_numpy_blas()})": lambda: a @ b,
        "onnxruntime MatMul": _ort_matmul(a, b),
    }
    return {name: 2 * n**3 / _best_seconds(fn, reps) / 1e9 for name, fn in kernels.items()}


def _best_seconds(fn: Callable[[], Any], reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _ort_matmul(a: np.ndarray, b: np.ndarray) -> Callable[[], Any]:
    import onnx
    from onnx import TensorProto, helper

    from costbench.runtimes.ort_session import make_session

    n = a.shape[0]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "ab"],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    session = make_session(model.SerializeToString(), CPU)
    return lambda: session.run(["c"], {"a": a, "b": b})


def _torch_blas() -> str:
    found = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return found.group(1) if found else "BLAS"


def _numpy_blas() -> str:
    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return str(info.get("name", "BLAS"))
    except Exception:
        return "BLAS"


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
    return get_runtime(runtime).serve(fitted, SimpleNamespace(test=split), cfg, CPU)


def dense_weights(model: torch.nn.Module) -> int:
    """Multiply-adds per row of the model's dense layers."""
    return sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))


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
    parser.add_argument("--runtimes", default="eager,compile,ort,ort_int8", help=",".join(RUNTIMES))
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

    peaks = gemm_peaks()
    print(f"threads={torch.get_num_threads()} torch {torch.__version__}  fp32 GEMM peak 2048^2 (GFLOP/s):  "
          + "  ".join(f"{name} {gflops:.0f}" for name, gflops in peaks.items()))

    p50s: dict[tuple[str, str, int], list[float]] = {}
    setup: dict[tuple[str, str], float] = {}
    weights: dict[str, int] = {}
    for name in args.models.split(","):
        family, size = name.split(":")
        torch.manual_seed(0)
        model = build_model(resolve_hparams(ModelConfig(family=family, size=size)), SCHEMA).eval()
        weights[name] = dense_weights(model)
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

    print(f"{'model':<8}{'batch':>6}{'runtime':>14}{'p50 us':>11}{'x eager':>9}{'rows/s':>12}{'GFLOP/s':>9}"
          f"{'setup s':>9}")
    for name in args.models.split(","):
        for b in batches:
            eager = statistics.median(p50s[(name, "eager", b)])
            for kind in kinds:
                p50 = statistics.median(p50s[(name, kind, b)])
                gflops = f"{2 * b * weights[name] / (p50 / 1000) / 1e9:.0f}" if b >= 64 else "-"
                print(f"{name:<8}{b:>6}{kind:>14}{p50 * 1000:>11.1f}{eager / p50:>9.2f}{b / (p50 / 1000):>12.0f}"
                      f"{gflops:>9}{setup[(name, kind)]:>9.1f}")


if __name__ == "__main__":
    main()
