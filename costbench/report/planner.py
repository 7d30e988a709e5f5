"""Serving cost planner: what each front member would cost per month at a given traffic and p99 SLO.

For every front member, from the best figure it has:

- its server scenario (MLPerf LoadGen, ``serve.scenario: server``) when that ran at an SLO no looser than
  the plan's: devices = ceil(rate / max_qps_at_slo). That QPS was measured under Poisson arrivals with a
  dynamic batcher and p99 at the SLO, so queueing is already in it and no headroom is added;
- otherwise fixed-batch latency: the largest measured batch size whose p99 meets the SLO; devices =
  ceil(rate x 1.3 / throughput at that batch) (back-to-back calls, no queueing: the 30% headroom absorbs
  ordinary peaks).

``rate`` is the *average* request rate of the traffic (rows per second; neither rule covers a daily peak far
above the mean). Monthly serving cost = devices x device-hour price x 730 h, priced from the trial's own price
table; the cost of a million predictions is at the figure's rate on one device. With retrains, monthly total =
serving + retrains x the trial's training cost.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from costbench.errors import UserError
from costbench.report.rows import Row
from costbench.report.scenario import not_valid_reason, server_figure
from costbench.spec import PricesConfig

HEADROOM = 1.3
HOURS_PER_MONTH = 730.0
_SCALE = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9}
_PERIOD_S = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hr": 3600.0,
             "hour": 3600.0, "d": 86400.0, "day": 86400.0, "month": HOURS_PER_MONTH * 3600.0}
_TRAFFIC = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKMB]?)\s*/\s*([a-z]+)\s*$")
_SLO_MS = {"ms": 1.0, "s": 1000.0, "us": 1e-3, "µs": 1e-3}
_SLO = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|us|µs)\s*$")

PLAN_RULE = (
    "from a server-scenario figure (MLPerf LoadGen, Poisson arrivals) measured at an SLO no looser than the "
    "plan's: devices = ceil(average rows/s / max_qps_at_slo); otherwise from fixed-batch latency: devices = "
    f"ceil(average rows/s x {HEADROOM} / throughput at the largest measured batch size whose p99 "
    f"meets the SLO); monthly serving = devices x device-hour price x {HOURS_PER_MONTH:g} h "
    "(CPU: threads x cpu_core_hour_usd; GPU: gpu_hour_usd_by_model by name, else gpu_hour_usd; "
    "priced like the training cost)"
)


def parse_traffic(text: str) -> float:
    """'50M/day' -> average rows per second (k, M, B; /s, /min, /h, /day, /month = 730 h)."""
    match = _TRAFFIC.match(text)
    if not match or match.group(3) not in _PERIOD_S:
        raise UserError(f"--traffic '{text}' is not COUNT/PERIOD; e.g. 50M/day, 2k/s, 1.5B/month "
                        f"(periods: s, min, h, day, month)")
    number, scale, period = match.groups()
    rate = float(number) * _SCALE[scale] / _PERIOD_S[period]
    if rate <= 0:
        raise UserError(f"--traffic '{text}' must be more than zero")
    return rate


def parse_slo(text: str) -> float:
    """'20ms' -> 20.0 milliseconds (ms, s, us)."""
    match = _SLO.match(text)
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"--slo-p99 '{text}' is not a positive duration; e.g. 20ms, 0.05s, 500us")
    return float(match.group(1)) * _SLO_MS[match.group(2)]


@dataclass
class Plan:
    """How one front member would serve the traffic, or why it cannot."""

    row: Row
    basis: str = ""  # which figure the plan used: the server scenario's or a fixed batch size's
    batch_size: int | None = None
    p99_ms: float | None = None
    throughput: float | None = None
    devices: int | None = None
    device_hour_usd: float | None = None
    usd_per_million: float | None = None
    serving_usd_month: float | None = None
    training_usd_month: float | None = None
    total_usd_month: float | None = None
    note: str = ""


def device_hour_usd(row: Row) -> tuple[float | None, str]:
    """One serving device per hour, priced as the trial's training was (measure.cost), or None and why."""
    from costbench.measure.cost import held_units, unit_hour_usd  # torch-free; imported only when planning

    prices = PricesConfig.model_validate(row.config.get("prices") or {})
    device = str(row.details.get("device") or row.config.get("device") or "cpu")
    threads = row.details.get("threads") or row.config.get("threads")
    if not device.startswith("cuda") and not threads:
        return None, "thread count not recorded, so the CPU price is unknown"
    return unit_hour_usd(device, row.details.get("gpu"), prices) * held_units(device, threads or 1), ""


def plan_one(row: Row, rate: float, slo_ms: float, retrains: float) -> Plan:
    plan = Plan(row=row)
    figure = server_figure(row)
    if figure is not None and figure.slo_ms <= slo_ms:
        stricter = f", stricter than the plan's {slo_ms:g} ms" if figure.slo_ms < slo_ms else ""
        plan.basis = f"server scenario (p99 <= {figure.slo_ms:g} ms{stricter})"
        plan.p99_ms, plan.throughput = figure.p99_ms, figure.qps
        plan.devices = math.ceil(rate / figure.qps)
    else:
        if not _plan_fixed_batch(plan, slo_ms):
            return plan
        plan.devices = math.ceil(rate * HEADROOM / plan.throughput)
        if figure is not None:
            plan.note = (f"server scenario measured at p99 <= {figure.slo_ms:g} ms, looser than {slo_ms:g} ms: "
                         "planned from fixed-batch latency")
        elif reason := not_valid_reason(row):
            plan.note = f"{reason}: planned from fixed-batch latency"
    plan.device_hour_usd, why = device_hour_usd(row)
    plan.note = "; ".join(n for n in (plan.note, why) if n)
    if plan.device_hour_usd is None:
        return plan
    plan.usd_per_million = plan.device_hour_usd * 1e6 / (plan.throughput * 3600)
    plan.serving_usd_month = plan.devices * plan.device_hour_usd * HOURS_PER_MONTH
    train_cost = row.metrics.get("train_cost_usd")
    if retrains == 0:
        plan.training_usd_month = 0.0
    elif train_cost is not None:
        plan.training_usd_month = retrains * train_cost
    else:
        plan.note = "; ".join(n for n in (plan.note, "training cost n/a, so the monthly total is unknown") if n)
        return plan
    plan.total_usd_month = plan.serving_usd_month + plan.training_usd_month
    return plan


def _plan_fixed_batch(plan: Plan, slo_ms: float) -> bool:
    """Fill ``plan`` from the largest measured batch size whose p99 meets the SLO; False (and why) if none."""
    stats = plan.row.batch_stats()
    meets = [b for b, s in stats.items() if s.get("p99_ms", math.inf) <= slo_ms and s.get("throughput", 0) > 0]
    if not meets:
        measured = ", ".join(f"{b}: {s['p99_ms']:.3g} ms" for b, s in stats.items() if "p99_ms" in s)
        plan.note = f"no measured batch size meets p99 <= {slo_ms:g} ms ({measured or 'no latency measured'})"
        if reason := not_valid_reason(plan.row):
            plan.note += f"; {reason}"
        return False
    plan.batch_size = max(meets)
    plan.basis = f"batch {plan.batch_size} latency"
    plan.p99_ms = stats[plan.batch_size]["p99_ms"]
    plan.throughput = stats[plan.batch_size]["throughput"]
    return True


def plan_serving(rows: list[Row], rate: float, slo_ms: float, retrains: float = 0.0) -> list[Plan]:
    """A plan per row, cheapest monthly total first (higher AUC first at equal cost); unpriced last.

    A low-quality row (chance level, far below the best) is planned after every other one, however cheap:
    the cheapest way to serve a useless model is not an answer.
    """
    plans = [plan_one(r, rate, slo_ms, retrains) for r in rows]
    for plan in plans:
        if "low-quality" in plan.row.flags:
            plan.note = "; ".join(n for n in ("low-quality: listed last, not recommended", plan.note) if n)
    return sorted(plans, key=lambda p: ("low-quality" in p.row.flags, p.total_usd_month is None,
                                        p.total_usd_month or 0.0, -(p.row.metrics.get("auc") or 0.0)))
