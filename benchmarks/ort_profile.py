"""Where a served network's time goes: ONNX Runtime's per-operator profile beside torch.profiler's for eager.

For one model (default mlp s) at one batch size, ONNX Runtime's own profiler (``enable_profiling``) is run
over ``--calls`` calls and each operator's median kernel time is printed, largest first; then the same
model in eager PyTorch under ``torch.profiler``, its ops by self CPU time. Before them, both whole-call p50s
timed in interleaved rounds under the machine-wide latency lock, their ratio, and the largest difference
between the two runtimes' logits. The session is built as costbench serves it (``runtimes.onnx``).

    PYTHONPATH=. python benchmarks/ort_profile.py --model mlp:s --batch 256 --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.latency_agreement import SCHEMA, example_split
from costbench.measure.latency import latency_lock
from costbench.model_presets import resolve_hparams
from costbench.models import build_model
from costbench.runtimes.onnx import INPUT_NAMES, export_onnx
from costbench.spec import ModelConfig


def session(graph: bytes, profile_prefix: str | None) -> Any:
    """A session as ``runtimes.onnx.make_session`` builds it, profiling when ``profile_prefix`` is given."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if profile_prefix:
        options.enable_profiling, options.profile_file_prefix = True, profile_prefix
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def median_us(fn: Callable[[], Any], calls: int) -> float:
    fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def node_medians(profile_file: str) -> dict[tuple[str, str], float]:
    """(operator, node) -> median kernel time (us) over the profiled calls."""
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    for event in json.loads(Path(profile_file).read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            times[(event["args"].get("op_name", "?"), event["name"][:-len("_kernel_time")])].append(event["dur"])
    return {key: statistics.median(values) for key, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp:s")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    family, size = args.model.split(":")
    torch.manual_seed(0)
    model = build_model(resolve_hparams(ModelConfig(family=family, size=size)), SCHEMA).eval()
    inputs = tuple(t[:args.batch].contiguous() for t in example_split(max(args.batch, 2)).inputs())
    graph = export_onnx(model, tuple(t[:2] for t in inputs))
    plain = session(graph, None)
    feed = {i.name: inputs[INPUT_NAMES.index(i.name)].numpy() for i in plain.get_inputs()}
    with tempfile.TemporaryDirectory() as folder:
        profiled = session(graph, str(Path(folder) / "ort"))
        ort_us, eager_us = [], []
        with latency_lock(), torch.inference_mode():
            for _ in range(args.calls):
                profiled.run(None, feed)
            for _ in range(5):
                ort_us.append(median_us(lambda: plain.run(None, feed), args.calls // 2))
                eager_us.append(median_us(lambda: model(*inputs), args.calls // 2))
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(args.calls // 3):
                    model(*inputs)
            diff = float(np.abs(plain.run(None, feed)[0] - model(*inputs).numpy()).max())
        nodes = node_medians(profiled.end_profiling())
    ort_p50, eager_p50 = statistics.median(ort_us), statistics.median(eager_us)
    print(f"{args.model} batch {args.batch}, {args.threads} thread(s): ORT p50 {ort_p50:.1f} us, eager p50 "
          f"{eager_p50:.1f} us, eager/ORT {eager_p50 / ort_p50:.2f}; max |ORT - eager| logit {diff:.1e}")
    total = sum(nodes.values())
    print(f"ONNX Runtime, median kernel time per node ({len(nodes)} nodes, sum {total:.0f} us):")
    for (op, node), us in sorted(nodes.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"  {us:7.1f} us {us / total:6.1%}  {op:<14} {node}")
    print("eager PyTorch, torch.profiler by self CPU time:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()
