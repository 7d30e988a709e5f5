"""Money: device time held x the sweep's price table (``prices``), for training and for serving.

A CPU trial is charged for the cores it held (its torch thread count) at ``cpu_core_hour_usd``; a
CUDA trial for one GPU at the price of its model (``gpu_hour_usd_by_model``, matched as a substring of
the GPU's name, the longest match winning) or ``gpu_hour_usd`` for a GPU the table does not name. A GPU
trial's host cores are not charged on top: cloud GPU prices include their host share.
``device`` is a torch.device or its name; nothing here imports torch, so reports price quickly.
"""

from __future__ import annotations

from typing import Any

from costbench.spec import PricesConfig

SECONDS_PER_HOUR = 3600.0


def gpu_hour_usd(gpu_name: str | None, prices: PricesConfig) -> float:
    """Hourly price of a GPU by model name ('NVIDIA H100 80GB HBM3' matches 'H100'), else the default."""
    name = (gpu_name or "").lower()
    matches = [key for key in prices.gpu_hour_usd_by_model if key.lower() in name]
    if not matches:
        return prices.gpu_hour_usd
    return prices.gpu_hour_usd_by_model[max(matches, key=len)]


def held_units(device: Any, threads: int) -> int:
    """How many priced units a trial holds: its cores on CPU, one GPU on CUDA."""
    return 1 if _is_cuda(device) else threads


def unit_hour_usd(device: Any, gpu_name: str | None, prices: PricesConfig) -> float:
    """Price of one held unit for one hour: a CPU core, or this GPU."""
    if _is_cuda(device):
        return gpu_hour_usd(gpu_name, prices)
    return prices.cpu_core_hour_usd


def train_device_hours(seconds: float, device: Any, threads: int) -> float:
    """Unit-hours held while training: wall-clock hours x cores (CPU) or x 1 GPU."""
    return seconds / SECONDS_PER_HOUR * held_units(device, threads)


def train_cost_usd(seconds: float, device: Any, threads: int, gpu_name: str | None,
                   prices: PricesConfig) -> dict[str, float]:
    """``{"train_device_hours", "train_cost_usd"}`` for a training run of ``seconds`` wall-clock."""
    hours = train_device_hours(seconds, device, threads)
    return {"train_device_hours": hours, "train_cost_usd": hours * unit_hour_usd(device, gpu_name, prices)}


def serve_cost_per_million_usd(throughput: float | None, device: Any, threads: int,
                               gpu_name: str | None, prices: PricesConfig) -> float | None:
    """Cost of 1e6 predictions at ``throughput`` rows/s on the held device(s); None without a throughput."""
    if throughput is None or throughput <= 0:
        return None
    usd_per_second = unit_hour_usd(device, gpu_name, prices) * held_units(device, threads) / SECONDS_PER_HOUR
    return usd_per_second * 1e6 / throughput


def _is_cuda(device: Any) -> bool:
    return str(device).startswith("cuda")
