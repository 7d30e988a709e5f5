"""What a 50% structured prune buys in serving latency, measured as a ratio in one run.

An mlp of size ``--size`` (random weights: latency does not read them) and the same model pruned by
``costbench.compress.prune.structured_prune`` to ``--amount`` of its parameters are served by the same
runtime (``--runtime``: eager, ort or ort_int8, through ``costbench.runtimes`` as a trial would) and timed
by costbench's own ``measure_latency`` in ``--rounds`` interleaved rounds (before, after, before, ...);
the table gives the median p50 per batch size and the pruned/unpruned ratio. The sweep's own
before/after figures (``p50_ms_before_prune``) come from parallel trials on a shared machine; this is
the quiet, same-process comparison.

    PYTHONPATH=. python benchmarks/prune_latency.py --threads 1 [--size m --amount 0.5 --runtime eager]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from benchmarks.latency_agreement import SCHEMA, example_split
from benchmarks.serving_runtimes import RUNTIMES, serve
from costbench.compress.prune import structured_prune
from costbench.measure.latency import measure_latency
from costbench.model_presets import resolve_hparams
from costbench.models import build_model, count_params
from costbench.spec import ModelConfig, ServeConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="m")
    parser.add_argument("--amount", type=float, default=0.5)
    parser.add_argument("--runtime", default="eager", choices=[k for k in RUNTIMES if "torchao" not in k])
    parser.add_argument("--batch-sizes", default="1,256")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    split = example_split(4096)
    hparams = resolve_hparams(ModelConfig(family="mlp", size=args.size))
    model = build_model(hparams, SCHEMA).eval()
    pruned = structured_prune(model, hparams, SCHEMA, args.amount, split.inputs(slice(0, 2048))).model.eval()
    models = {"unpruned": model, "pruned": pruned}
    served = {name: serve(args.runtime, net, split, batches) for name, net in models.items()}
    timing = ServeConfig(batch_sizes=batches, min_calls=1000, min_seconds=0.5, rounds=1)
    p50: dict[str, dict[int, list[float]]] = {name: {b: [] for b in batches} for name in models}
    for _ in range(args.rounds):
        for name, s in served.items():
            result = measure_latency(s.predict, split, timing, torch.device("cpu"), stage=s.stage)
            for b in batches:
                p50[name][b].append(result["batch_sizes"][str(b)]["p50_ms"])
    print(f"mlp {args.size}, {args.runtime}, {args.threads} thread(s): params {count_params(model):,} -> "
          f"{count_params(pruned):,} ({count_params(pruned) / count_params(model):.0%})")
    print(f"{'batch':>6} {'unpruned p50 (ms)':>18} {'pruned p50 (ms)':>16} {'ratio':>6}")
    for b in batches:
        before, after = (statistics.median(p50[name][b]) for name in models)
        print(f"{b:>6} {before:>18.4f} {after:>16.4f} {after / before:>6.2f}")


if __name__ == "__main__":
    main()
