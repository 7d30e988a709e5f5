"""Does costbench's training loop cost throughput? The same mlp on the same data, trained by
``costbench.train.train_model`` and by the shortest hand-written PyTorch loop (tensor slicing, AdamW,
BCE-with-logits), one epoch each, alternating, in the same process. Prints samples/s of each and their
ratio (goal: >= 0.95). Both rates count the optimisation steps only (costbench's validation pass, which
the hand loop does not have, is excluded from both).

    .venv/bin/python benchmarks/train_throughput.py --rows 200000 --rounds 5 --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from torch import nn

from costbench.data import PreparedData
from costbench.data.load import load_data
from costbench.model_presets import resolve_hparams
from costbench.models import build_model, count_params
from costbench.spec import DataConfig, ModelConfig, TrainConfig
from costbench.train import seed_everything, train_model


def hand_written_epoch(model: nn.Module, data: PreparedData, batch_size: int, lr: float) -> float:
    """The shortest honest loop: shuffle, slice, forward, BCE, AdamW. Returns samples/s."""
    numeric, categorical, items, item_categories = data.train.inputs()
    label = data.train.label
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    start = time.perf_counter()
    order = torch.randperm(len(label))
    for i in range(0, len(label), batch_size):
        idx = order[i:i + batch_size]
        loss = loss_fn(model(numeric[idx], categorical[idx], items[idx], item_categories[idx]), label[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return len(label) / (time.perf_counter() - start)


def costbench_epoch(model: nn.Module, data: PreparedData, batch_size: int, lr: float) -> float:
    cfg = TrainConfig(epochs=1, batch_size=batch_size, lr=lr, weight_decay=0.01, optimizer="adamw")
    result = train_model(model, data, cfg, device=torch.device("cpu"), autocast=contextlib.nullcontext,
                         grad_scaler=None)
    return result.samples_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--size", default="m", help="mlp size preset (m = 3 x 256)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    data = load_data(DataConfig(rows=args.rows), None)
    hparams = resolve_hparams(ModelConfig(family="mlp", size=args.size))
    loops = {"costbench": costbench_epoch, "hand-written": hand_written_epoch}
    rates: dict[str, list[float]] = {name: [] for name in loops}
    params = 0
    for round_ in range(args.rounds + 1):  # round 0 warms up both and is not counted
        for name in (list(loops) if round_ % 2 else list(loops)[::-1]):  # alternate who goes first
            seed_everything(round_)
            model = build_model(hparams, data.schema)
            params = count_params(model)
            rate = loops[name](model, data, args.batch_size, 0.002)
            if round_:
                rates[name].append(rate)

    print(f"mlp size {args.size} ({params:,} params), {len(data.train):,} training rows, batch {args.batch_size}, "
          f"{args.threads} thread(s), {args.rounds} interleaved rounds of one epoch each")
    for name, values in rates.items():
        print(f"  {name:>12}: median {statistics.median(values):>9,.0f} samples/s  "
              f"(min {min(values):,.0f}, max {max(values):,.0f})")
    per_round = [c / h for c, h in zip(rates["costbench"], rates["hand-written"], strict=True)]
    print(f"  ratio costbench / hand-written: median {statistics.median(per_round):.3f} "
          f"(per round: {', '.join(f'{r:.3f}' for r in per_round)}); goal >= 0.95")


if __name__ == "__main__":
    main()
