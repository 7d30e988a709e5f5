"""How fast the synthetic shoppers are generated and prepared, and how much signal they carry.

    .venv/bin/python benchmarks/data_generation.py [--rows 1000000] [--quality-rows 200000]

Prints: seconds to generate ``--rows`` sessions (median of 3), seconds for the whole ``load_data``
(generate, split, prepare, tensors) without and with a cache write, then a cache read; and on the
``--quality-rows`` default config: the Bayes-optimal test AUC, the best AUC a model that ignores the
sequence could reach (Monte Carlo over sequences). tests/test_data_synthetic.py holds the logistic
regression it is compared with.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch

from costbench.data import synthetic
from costbench.data.load import load_data
from costbench.metrics import roc_auc
from costbench.spec import DataConfig


def timed(fn, repeats: int = 1) -> tuple[str, object]:
    """Median wall and CPU seconds: on a shared machine the CPU time is the steadier figure."""
    wall, cpu, out = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return f"{statistics.median(wall):.2f} s wall, {statistics.median(cpu):.2f} s CPU", out


def bayes_without_sequence(cfg: DataConfig, draws: int = 16) -> float:
    """Test AUC of E[true_prob | tabular columns], averaging over fresh sequences for the same rows."""
    streams = np.random.SeedSequence([synthetic.GENERATOR_VERSION, cfg.seed]).spawn(4)
    gen = synthetic.generate(cfg.rows, positive_rate=cfg.positive_rate, noise=cfg.noise,
                             sequence_length=cfg.sequence_length, n_items=cfg.n_items,
                             n_categories=cfg.n_categories, seed=cfg.seed)
    world = synthetic.make_world(cfg.n_items, cfg.n_categories, np.random.default_rng(streams[0]))
    tab = synthetic.tabular_logit(gen.columns, world)
    p = np.clip(gen.true_prob, 1e-12, 1 - 1e-12)
    cut = np.median(tab + gen.sequence_logit - cfg.noise * np.log(p / (1 - p)))
    mean = np.zeros(cfg.rows)
    for seed in range(draws):
        items, cats = synthetic.draw_sequences(gen.columns, world, cfg.sequence_length,
                                               np.random.default_rng([99, seed]))
        logit = (tab + synthetic.sequence_logit(items, cats, world) - cut) / cfg.noise
        mean += 0.5 * (1.0 + np.tanh(0.5 * logit))
    # the same test rows load_data uses
    from costbench.data.tabular import stratified_split

    test = stratified_split(gen.label, {"val": cfg.split.val, "test": cfg.split.test}, cfg.split.seed)["test"]
    return roc_auc(gen.label[test], mean[test])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quality-rows", type=int, default=200_000)
    args = parser.parse_args()
    print(f"torch threads {torch.get_num_threads()}, numpy {np.__version__}")

    cfg = DataConfig(rows=args.rows)
    seconds, gen = timed(lambda: synthetic.generate(cfg.rows), repeats=3)
    print(f"generate {cfg.rows:,} rows: {seconds} (median of 3), positive rate {gen.label.mean():.4f}")
    seconds, _ = timed(lambda: load_data(cfg, None))
    print(f"load_data {cfg.rows:,} rows, no cache: {seconds}")
    with tempfile.TemporaryDirectory() as cache:
        seconds, _ = timed(lambda: load_data(cfg, cache))
        print(f"load_data {cfg.rows:,} rows, building the cache: {seconds}")
        seconds, _ = timed(lambda: load_data(cfg, cache), repeats=3)
        print(f"load_data {cfg.rows:,} rows, from the cache: {seconds} (median of 3)")

    q = DataConfig(rows=args.quality_rows)
    data = load_data(q, None)
    print(f"\ndefault config at {q.rows:,} rows (test split {len(data.test):,} rows):")
    print(f"  Bayes-optimal AUC                     {data.bayes_auc:.4f}")
    print(f"  best AUC without the sequence (MC 16) {bayes_without_sequence(q):.4f}")


if __name__ == "__main__":
    main()
