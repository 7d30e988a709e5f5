"""Does costbench's per-call latency agree with PyTorch's own timer? For a few served models and batch
sizes, costbench's p50 (``measure_latency``) and ``torch.utils.benchmark.Timer(...).blocked_autorange()``'s
median are taken in interleaved rounds in the same process (the order flips every round), and the
ratio costbench / torch is printed per point with the median over all points. Goal: 0.9-1.1. The means
(costbench's mean per call, torch's mean of block means) are compared beside them: on a loaded machine
preemptions inflate every block mean but only the tail of per-call times, and the means show whether
the two timers see the same total time.

The two differ by design in small ways: costbench times every call on its own and cycles through
distinct batches of rows; blocked_autorange times blocks of calls on one batch and reports the median
block mean (so per-call outliers pull it up a little). Both run under the machine-wide latency lock.

    .venv/bin/python benchmarks/latency_agreement.py --models mlp:s,mlp:m,transformer:xs --batch-sizes 1,256 \
        --threads 1   # on a shared box: more threads than free cores makes OpenMP barriers stall
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from torch.utils.benchmark import Timer

from costbench.data import Schema, Split
from costbench.measure.latency import latency_lock, measure_latency, staged_batches
from costbench.model_presets import resolve_hparams
from costbench.models import build_model
from costbench.spec import ModelConfig, ServeConfig

SCHEMA = Schema(numeric_names=[f"x{i}" for i in range(8)], categorical_names=["device", "country", "channel"],
                cardinalities=[4, 30, 8], sequence_length=20, n_items=5000, n_item_categories=41)


def example_split(rows: int, seed: int = 0) -> Split:
    """Rows shaped like costbench's synthetic shoppers (values random; latency does not read them)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, SCHEMA.sequence_length + 1, (rows, 1), generator=gen)
    mask = torch.arange(SCHEMA.sequence_length) < lengths
    return Split(
        numeric=torch.randn(rows, SCHEMA.n_numeric, generator=gen),
        categorical=torch.stack([torch.randint(0, c, (rows,), generator=gen) for c in SCHEMA.cardinalities], 1),
        items=torch.randint(1, SCHEMA.n_items, (rows, SCHEMA.sequence_length), generator=gen) * mask,
        item_categories=torch.randint(1, SCHEMA.n_item_categories, (rows, SCHEMA.sequence_length),
                                      generator=gen) * mask,
        label=torch.zeros(rows),
    )


def served(family: str, size: str, device: torch.device) -> Callable[..., torch.Tensor]:
    """An fp32 model in eval mode behind inference_mode: what serving calls."""
    model = build_model(resolve_hparams(ModelConfig(family=family, size=size)), SCHEMA).to(device).eval()

    @torch.inference_mode()
    def fn(*inputs: torch.Tensor) -> torch.Tensor:
        return model(*inputs)

    return fn


def costbench_ms(fn: Callable[..., torch.Tensor], split: Split, batch: int, device: torch.device,
                 min_seconds: float) -> tuple[float, float, bool]:
    """costbench's p50 and mean per call (ms), and whether its GEMM probe called the run noisy."""
    serve = ServeConfig(batch_sizes=[batch], warmup=10, min_calls=662, min_seconds=min_seconds, rounds=1)
    result = measure_latency(fn, split, serve, device)
    stats = result["batch_sizes"][str(batch)]
    return stats["p50_ms"], stats["mean_ms"], result["probe"]["noisy"]


def torch_ms(fn: Callable[..., torch.Tensor], split: Split, batch: int, device: torch.device,
             min_seconds: float) -> tuple[float, float]:
    """blocked_autorange's median and mean of block means, per call (ms)."""
    inputs = staged_batches(split, batch, device)[0]
    timer = Timer(stmt="fn(*inputs)", globals={"fn": fn, "inputs": inputs}, num_threads=torch.get_num_threads())
    with latency_lock():
        measurement = timer.blocked_autorange(min_run_time=min_seconds)
    return measurement.median * 1000, measurement.mean * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp:s,mlp:m,transformer:xs", help="family:size,...")
    parser.add_argument("--batch-sizes", default="1,256")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=0.3, help="per measurement, each side")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    split = example_split(4096)
    points = [(m, int(b)) for m in args.models.split(",") for b in args.batch_sizes.split(",")]
    fns = {m: served(*m.split(":"), device) for m in dict.fromkeys(m for m, _ in points)}
    ours: dict[tuple[str, int], list[tuple[float, float]]] = {p: [] for p in points}
    theirs: dict[tuple[str, int], list[tuple[float, float]]] = {p: [] for p in points}
    noisy = 0
    for r in range(args.rounds):
        for model, batch in points:
            fn = fns[model]
            sides = ["costbench", "torch"] if r % 2 == 0 else ["torch", "costbench"]
            for side in sides:
                if side == "costbench":
                    p50, mean, was_noisy = costbench_ms(fn, split, batch, device, args.min_seconds)
                    ours[(model, batch)].append((p50, mean))
                    noisy += was_noisy
                else:
                    theirs[(model, batch)].append(torch_ms(fn, split, batch, device, args.min_seconds))
    print(f"device={device} threads={torch.get_num_threads()} rounds={args.rounds} "
          f"min_seconds={args.min_seconds} noisy_probe_rounds={noisy}/{args.rounds * len(points)}")
    print(f"{'model':<16}{'batch':>6}{'cb p50 ms':>11}{'torch median':>14}{'ratio':>7}"
          f"{'cb mean ms':>12}{'torch mean':>12}{'ratio':>7}")
    ratios: list[tuple[float, float]] = []
    for point in points:
        p50, mean = (statistics.median(x) for x in zip(*ours[point], strict=True))
        median, their_mean = (statistics.median(x) for x in zip(*theirs[point], strict=True))
        ratios.append((p50 / median, mean / their_mean))
        print(f"{point[0]:<16}{point[1]:>6}{p50:>11.4f}{median:>14.4f}{p50 / median:>7.3f}"
              f"{mean:>12.4f}{their_mean:>12.4f}{mean / their_mean:>7.3f}")
    p50_ratios, mean_ratios = zip(*ratios, strict=True)
    print(f"median ratio p50/median {statistics.median(p50_ratios):.3f} (goal 0.9-1.1); "
          f"mean/mean {statistics.median(mean_ratios):.3f}")


if __name__ == "__main__":
    main()
