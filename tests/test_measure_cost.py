"""Cost arithmetic against hand-computed cases."""

from __future__ import annotations

import pytest
import torch

from costbench.measure.cost import gpu_hour_usd, serve_cost_per_million_usd, train_cost_usd
from costbench.spec import PricesConfig

PRICES = PricesConfig(cpu_core_hour_usd=0.036, gpu_hour_usd=3.0,
                      gpu_hour_usd_by_model={"H100": 3.5, "H100 NVL": 4.0, "A100": 2.0})


def test_gpu_price_by_model_name_substring_longest_match_wins():
    assert gpu_hour_usd("NVIDIA A100-SXM4-80GB", PRICES) == 2.0
    assert gpu_hour_usd("NVIDIA H100 80GB HBM3", PRICES) == 3.5
    assert gpu_hour_usd("NVIDIA H100 NVL", PRICES) == 4.0
    assert gpu_hour_usd("nvidia h100 nvl", PRICES) == 4.0
    assert gpu_hour_usd("Tesla V100-SXM2-16GB", PRICES) == 3.0  # not in the table: the default
    assert gpu_hour_usd(None, PRICES) == 3.0


def test_cpu_training_pays_for_every_core_held():
    # 2 h on 4 cores = 8 core-hours x $0.036 = $0.288
    cost = train_cost_usd(7200, torch.device("cpu"), 4, None, PRICES)
    assert cost == pytest.approx({"train_device_hours": 8.0, "train_cost_usd": 0.288})


def test_gpu_training_pays_for_one_gpu_whatever_the_threads():
    # 30 min on one H100 = 0.5 GPU-hours x $3.5 = $1.75
    cost = train_cost_usd(1800, "cuda:0", 16, "NVIDIA H100 80GB HBM3", PRICES)
    assert cost == pytest.approx({"train_device_hours": 0.5, "train_cost_usd": 1.75})


def test_serving_cost_per_million_from_throughput():
    # 2 cores x $0.036/h = $0.072/h = $2e-5/s; 1e6 rows at 1,000 rows/s = 1,000 s -> $0.02
    assert serve_cost_per_million_usd(1000.0, "cpu", 2, None, PRICES) == pytest.approx(0.02)
    # A100 $2/h; 1e6 rows at 50,000 rows/s = 20 s -> 2 / 3600 * 20 = $0.0111...
    assert serve_cost_per_million_usd(50_000.0, "cuda", 8, "NVIDIA A100", PRICES) == pytest.approx(2 / 180)


def test_no_throughput_means_no_serving_cost():
    assert serve_cost_per_million_usd(None, "cpu", 2, None, PRICES) is None
    assert serve_cost_per_million_usd(0.0, "cpu", 2, None, PRICES) is None
