"""The decision in one sentence: what to ship, and what the most accurate alternative would cost.

"Ship X: AUC a ± ci, p99 b ms, $c per million predictions; the most accurate trial Y is d AUC better and
e× dearer." Shown on top of the HTML page, in report.md and under the terminal table.
"""

from __future__ import annotations

from costbench.report.build import Report
from costbench.report.names import axis_text, display
from costbench.report.rows import Row


def describe(row: Row) -> str:
    """'3f2a9c01b7de (dcn xs int8 512)': the id and its grid values."""
    values = " ".join(axis_text(v) for v in row.axes.values())
    return f"{row.id} ({values})" if values else row.id


def _auc(row: Row) -> str:
    auc = row.metrics.get("auc")
    if auc is None:
        return "AUC n/a"
    low, high = row.metrics.get("auc_ci_low"), row.metrics.get("auc_ci_high")
    if low is not None and high is not None:
        return f"AUC {auc:.4f} ± {(high - low) / 2:.4f} (95% interval)"
    std = row.std.get("auc")
    return f"AUC {auc:.4f} ± {std:.4f} (std over {row.n} repeats)" if std is not None else f"AUC {auc:.4f}"


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:.2g}"


def _ratio_text(pick: Row, best: Row, report: Report) -> str:
    """How much dearer ``best`` is: per prediction where both were priced, else on the first cost objective."""
    metrics = ["serve_cost_per_million_usd", *(o.metric for o in report.objectives[1:] if o.direction == "min")]
    for metric in metrics:
        mine, theirs = pick.metrics.get(metric), best.metrics.get(metric)
        if mine and theirs and mine > 0 and theirs > 0:
            ratio = theirs / mine
            what = "per prediction" if metric == "serve_cost_per_million_usd" else f"on {display(metric)[0]}"
            if 0.95 <= ratio <= 1.05:
                return f"about as dear {what} ({ratio:.2f}×)"
            if ratio >= 1:
                return f"{ratio:.1f}× dearer {what}"
            return f"{1 / ratio:.1f}× cheaper {what} (it loses on another objective)"
    return "its cost is n/a"


def decision(report: Report) -> tuple[str, str]:
    """(headline, detail) of the decision card."""
    pick = report.pick
    if pick is None:
        if not report.rows:
            failed = len(report.not_ok)
            return ("Nothing to ship: no trial finished ok",
                    f"{failed} trial(s) failed or were skipped; the reasons are listed below" if failed else
                    "no trial has been recorded yet")
        return ("Nothing to ship: no front member passes the quality gates",
                "every front member is flagged below-twin or low-quality; see the flags in the table")
    parts = [_auc(pick)]
    if (p99 := pick.metrics.get("p99_ms")) is not None:
        parts.append(f"p99 {p99:.3g} ms")
    if (cost := pick.metrics.get("serve_cost_per_million_usd")) is not None:
        parts.append(f"{_money(cost)} per million predictions")
    headline = f"Ship {describe(pick)}: " + ", ".join(parts)
    rated = [r for r in report.rows if r.metrics.get("auc") is not None]
    best = max(rated, key=lambda r: r.metrics["auc"]) if rated else None  # type: ignore[arg-type,return-value]
    if best is None or best is pick or (best.metrics["auc"] or 0) <= (pick.metrics.get("auc") or 0):
        return headline, "it is also the most accurate trial"
    gain = (best.metrics["auc"] or 0) - (pick.metrics.get("auc") or 0)
    better = f"{gain:.4f} AUC better" if gain >= 0.00005 else "as accurate (within 0.0001 AUC)"
    if gain <= report.tie_tolerance:
        better += f", a tie under the {report.tie_tolerance:g} tolerance,"
    return headline, f"the most accurate trial {describe(best)} is {better} and {_ratio_text(pick, best, report)}"
