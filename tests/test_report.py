"""`costbench report` on synthetic runs: fronts, flags, filters, groups, repeats, missing trials, files."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from rich.console import Console

from costbench.errors import UserError
from costbench.record import make_record
from costbench.report import Report, ReportOptions, render_report
from costbench.report.build import build_report
from costbench.report.files import markdown
from costbench.report.table import fit, header_lines, to_rich, trials_table
from costbench.spec import Trial, load_sweep

# (size, precision) -> auc, train_cost_usd, p99_ms. Hand-made so every rank and flag below is known:
# s/int8 is beaten by xs/int8 on all three; the other three trade off (the front).
TABLE = {
    ("xs", "fp32"): (0.810, 1.0, 1.0),
    ("s", "fp32"): (0.850, 2.0, 2.0),
    ("xs", "int8"): (0.805, 1.0, 0.5),
    ("s", "int8"): (0.700, 2.0, 1.5),
}


ENVIRONMENT = {"costbench": "0.1.0", "host": "vm", "cpu": {"model": "Intel(R) Xeon(R) Processor", "logical_cores": 2,
               "usable_cores": 2, "flags": {"avx2": True, "avx512f": True, "amx_int8": False}},
               "gpus": [], "torch_threads": 2, "versions": {"python": "3.11.7", "torch": "2.13.0+cpu",
                                                            "numpy": "2.4.6"}}


def hand_metrics(trial: Trial) -> dict[str, Any]:
    auc, cost, p99 = TABLE[(trial.axes["model.size"], trial.axes["precision"])]
    auc += 0.01 * trial.repeat
    return {"auc": auc, "train_cost_usd": cost, "p99_ms": p99, "p99_ms@1": p99, "throughput@1": 1000 / p99,
            "p99_ms@64": 4 * p99, "throughput@64": 64000 / (4 * p99), "train_peak_mem_mb": 100 * cost,
            "probe_drift": 0.01}


def write_run(tmp_path: Path, *, repeats: int = 1, drop: int = 0, with_sweep: bool = True, run_json: bool = True,
              outcome: Callable[[Trial], tuple[str, dict[str, Any] | None]] | None = None) -> Path:
    """A run directory as the engine leaves it: sweep.yaml, run.json and trials.jsonl (minus ``drop`` trials).

    ``run_json=False`` is a run made before run.json existed (costbench < 0.2)."""
    run = tmp_path / "run"
    run.mkdir(parents=True)
    raw = {"name": "demo", "threads": 2, "serve": {"batch_sizes": [1, 64]}, "repeats": repeats,
           "grid": {"model.size": ["xs", "s"], "precision": ["fp32", "int8"]},
           "objectives": ["auc:max", "train_cost_usd:min", "p99_ms:min"]}
    (run / "sweep.yaml").write_text(yaml.safe_dump(raw))
    sweep = load_sweep(run / "sweep.yaml")
    if run_json:
        (run / "run.json").write_text(json.dumps({
            "schema": 1, "name": "demo", "description": "a hand-made run", "sweep_file": "sweep.yaml",
            "trial_ids": [t.id for t in sweep.trials], "axes": sweep.axes, "objectives": raw["objectives"],
            "repeats": repeats, "written_at": "2026-12-01T00:00:00+00:00", "costbench": "0.2.0"}))
    if not with_sweep:
        (run / "sweep.yaml").unlink()
    lines = []
    for trial in sweep.trials[: len(sweep.trials) - drop]:
        status, metrics = outcome(trial) if outcome else ("ok", hand_metrics(trial))
        record = make_record(trial.to_json(), status, metrics=metrics,  # type: ignore[arg-type]
                             reason=None if status == "ok" else f"{status} on purpose",
                             details={"device": "cpu", "threads": 2})
        lines.append(json.dumps(record))
    (run / "trials.jsonl").write_text("".join(f"{line}\n" for line in lines))
    (run / "environment.json").write_text(json.dumps(ENVIRONMENT))
    return run


def render(run: Path, **options: Any) -> tuple[Report, str, str]:
    out, err = io.StringIO(), io.StringIO()
    report = render_report(run, ReportOptions(**options), console=Console(file=out, width=250),
                           stderr=Console(file=err, width=250))
    return report, out.getvalue(), err.getvalue()


def build(run: Path, **options: Any) -> tuple[Report, str]:
    """The report without writing files (fast); returns it and its summary as one text."""
    report = build_report(run, **options)
    return report, "\n".join(report.summary + report.warnings)


def by_axes(report: Report) -> dict[tuple[str, str], Any]:
    return {(r.axes["model.size"], r.axes["precision"]): r for r in report.rows}


def test_ranks_flags_and_pick(tmp_path: Path) -> None:
    report, out, _ = render(write_run(tmp_path), min_quality=0.9)
    rows = by_axes(report)
    assert {k: r.rank for k, r in rows.items()} == {
        ("xs", "fp32"): 1, ("s", "fp32"): 1, ("xs", "int8"): 1, ("s", "int8"): 2}
    assert rows["xs", "int8"].metrics["auc_delta_vs_fp32"] == pytest.approx(-0.005)
    assert rows["s", "int8"].metrics["auc_delta_vs_fp32"] == pytest.approx(-0.15)
    assert rows["xs", "fp32"].metrics["auc_delta_vs_fp32"] == 0
    assert rows["s", "int8"].flags == ["below-twin", "low-quality"]  # 0.70 < 0.99*0.85 and < 0.9*0.85
    assert rows["xs", "int8"].flags == []  # 0.805 >= 0.99*0.81, >= 0.9*0.85 and within 0.05 of 0.85
    # no AUC within the tie tolerance of the best (0.85): the most accurate front member is the pick
    assert [k for k, r in rows.items() if r.pick] == [("s", "fp32")]
    assert [r.rank for r in report.rows] == [1, 1, 1, 2]  # front first, the pick at the top
    assert report.rows[0].pick
    assert "practical equivalence, then cost priority" in out
    assert "1 *" in out
    # a wide tolerance ties the three: training cost, the next objective, decides (1.0 for both xs), then p99
    report, _ = build(write_run(tmp_path / "wide"), min_quality=0.9, tie_tolerance=0.05)
    assert [k for k, r in by_axes(report).items() if r.pick] == [("xs", "int8")]


def test_quality_gate_keeps_flagged_trials_from_the_pick(tmp_path: Path) -> None:
    report, _ = build(write_run(tmp_path), min_quality=0.99)
    rows = by_axes(report)
    # 0.99 x best fp32 mlp AUC (0.85) = 0.8415: both xs trials fall below it
    assert rows["xs", "fp32"].flags == ["low-quality"]
    assert rows["xs", "int8"].flags == ["low-quality"]
    assert rows["xs", "fp32"].rank == 1  # marked, not removed
    assert [k for k, r in rows.items() if r.pick] == [("s", "fp32")]


def test_interrupted_run_counts_missing_failed_and_skipped(tmp_path: Path) -> None:
    statuses = iter(["failed", "skipped", "ok"])

    def outcome(trial: Trial) -> tuple[str, dict[str, Any] | None]:
        status = next(statuses)
        return status, hand_metrics(trial) if status == "ok" else None

    run = write_run(tmp_path, drop=1, outcome=outcome)
    with (run / "trials.jsonl").open("a") as handle:
        handle.write('{"id": "torn')
    report, out = build(run)
    assert len(report.rows) == 1
    assert "4 trial(s) in the sweep, 3 trial(s) recorded: 1 ok, 1 failed, 1 skipped; 1 missing" in out
    assert "left out of the front: 1 failed, 1 skipped" in out
    assert "torn last line" in out


def test_without_sweep_file_missing_is_unknown(tmp_path: Path) -> None:
    report, err = build(write_run(tmp_path, with_sweep=False, run_json=False))
    assert "missing trials unknown (run made by costbench < 0.2)" in err
    assert report.axes == ["model.size", "precision"]  # from the records
    assert report.summary[0].startswith("4 trial(s) recorded")


def test_a_retried_trial_counts_once_with_its_latest_record(tmp_path: Path) -> None:
    run = write_run(tmp_path, outcome=lambda t: ("failed", None))
    sweep = load_sweep(run / "sweep.yaml")
    with (run / "trials.jsonl").open("a") as handle:
        handle.write(json.dumps(make_record(sweep.trials[0].to_json(), "ok", metrics=hand_metrics(sweep.trials[0])))
                     + "\n")
    report, out = build(run)
    assert "4 trial(s) recorded: 1 ok, 3 failed" in out
    assert len(report.rows) == 1


def test_repeats_are_averaged_with_std(tmp_path: Path) -> None:
    report, out = build(write_run(tmp_path, repeats=2))
    rows = by_axes(report)
    assert len(report.rows) == 4
    assert all(r.n == 2 for r in report.rows)
    assert rows["s", "fp32"].metrics["auc"] == pytest.approx(0.855)
    assert rows["s", "fp32"].std["auc"] == pytest.approx(0.01 / 2**0.5)
    assert rows["s", "fp32"].std["p99_ms"] == 0
    cells = dict(zip([r.id for r in report.rows], trials_table(report).cells, strict=True))
    assert cells[rows["s", "fp32"].id][5:8] == ["0.8550 ± 0.0071", "2 ± 0", "2.00 ± 0.00"]
    assert "mean over its repeats" in out
    assert "except beside AUC in the trials table, where it is half the 95% interval" in out  # what ± means


def test_missing_objective_value_is_left_out_and_counted(tmp_path: Path) -> None:
    def outcome(trial: Trial) -> tuple[str, dict[str, Any]]:
        metrics = hand_metrics(trial)
        if trial.axes == {"model.size": "xs", "precision": "int8"}:
            metrics["p99_ms"] = None
        return "ok", metrics

    report, out = build(write_run(tmp_path, outcome=outcome))
    rows = by_axes(report)
    assert rows["xs", "int8"].rank == 0
    assert {k: r.rank for k, r in rows.items() if r.rank} == {("xs", "fp32"): 1, ("s", "fp32"): 1, ("s", "int8"): 2}
    assert report.rows[-1] is rows["xs", "int8"]
    assert "1 with p99_ms n/a" in out


def test_where_filters_before_the_front(tmp_path: Path) -> None:
    report, out = build(write_run(tmp_path), where=["p99_ms<=1", "auc >= 0.7"])
    assert sorted(by_axes(report)) == [("xs", "fp32"), ("xs", "int8")]  # s/int8 has p99 1.5
    assert "2 filtered out by --where p99_ms<=1 and auc >= 0.7" in out
    # text comparisons read the config: 'precision' here is the grid axis, not the metric
    report, _ = build(write_run(tmp_path / "b"), where=["precision==int8"])
    assert {r.axes["precision"] for r in report.rows} == {"int8"}
    report, _ = build(write_run(tmp_path / "c"), where=["config.model.size!=xs"])
    assert {r.axes["model.size"] for r in report.rows} == {"s"}


def test_bad_where_messages(tmp_path: Path) -> None:
    run = write_run(tmp_path)
    cases = {
        "p99_mz<=20": "unknown field 'p99_mz' (did you mean 'p99_ms'?)",
        "p99_ms=<20": "is not FIELD OP VALUE",
        "p99_ms": "is not FIELD OP VALUE",
        "p99_ms<=fast": "'fast' is not a number",
    }
    for where, message in cases.items():
        with pytest.raises(UserError) as error:
            build(run, where=[where])
        assert message in str(error.value)
        assert "\n" not in str(error.value)


def test_one_front_per_group(tmp_path: Path) -> None:
    report, out = build(write_run(tmp_path), by="precision", min_quality=0.5)
    rows = by_axes(report)
    assert {k: r.rank for k, r in rows.items()} == {
        ("xs", "fp32"): 1, ("s", "fp32"): 1, ("xs", "int8"): 1, ("s", "int8"): 2}
    assert sum(r.pick for r in report.rows) == 2
    assert {r.by for r in report.rows if r.pick} == {"fp32", "int8"}
    assert "one front per precision" in out
    report, _ = build(write_run(tmp_path / "b"), by="model.family")
    assert {r.by for r in report.rows} == {"mlp"}
    with pytest.raises(UserError, match=r"did you mean 'model\.size'"):
        build(write_run(tmp_path / "c"), by="model.sise")


def test_objectives_option(tmp_path: Path) -> None:
    run = write_run(tmp_path)
    report, _ = build(run, objectives="auc:max")
    assert [(r.axes["model.size"], r.axes["precision"]) for r in report.rows if r.rank == 1] == [("s", "fp32")]
    assert [r.rank for r in report.rows] == [1, 2, 3, 4]
    for bad, message in {"auc:up": "needs a direction", "acu:max": "did you mean 'auc'", " , ": "is empty"}.items():
        with pytest.raises(UserError, match=message):
            build(run, objectives=bad)


def test_noisy_latency_is_flagged(tmp_path: Path) -> None:
    def outcome(trial: Trial) -> tuple[str, dict[str, Any]]:
        return "ok", {**hand_metrics(trial), "probe_drift": 0.3}

    report, _ = build(write_run(tmp_path, outcome=outcome), min_quality=0.5)
    assert all("noisy" in r.flags for r in report.rows)


def test_rounds_that_disagree_flag_noisy_latency(tmp_path: Path) -> None:
    """A steady probe but per-round p50s 30% apart: the timing was not stable either."""

    def outcome(trial: Trial) -> tuple[str, dict[str, Any]]:
        spread = 0.3 if trial.config["precision"] == "int8" else 0.05
        return "ok", {**hand_metrics(trial), "probe_drift": 0.01, "round_spread": spread}

    report, _ = build(write_run(tmp_path, outcome=outcome), min_quality=0.5)
    assert {r.config["precision"] for r in report.rows if "noisy" in r.flags} == {"int8"}


def test_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such directory"):
        render(tmp_path / "nope")
    run = write_run(tmp_path)
    with pytest.raises(UserError, match="needs both --traffic and --slo-p99"):
        render(run, traffic="50M/day")
    with pytest.raises(UserError, match="--format 'yaml'"):
        render(run, format="yaml")
    with pytest.raises(UserError, match="--min-quality"):
        render(run, min_quality=1.5)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_every_file_is_written_and_valid(tmp_path: Path) -> None:
    run = write_run(tmp_path, repeats=2)
    report, _, _ = render(run, format="none", traffic="1M/day", slo_p99="2ms")
    pngs = sorted(run.glob("*.png"))
    assert [p.name for p in pngs] == ["auc_vs_p99_ms.png", "auc_vs_train_cost_usd.png",
                                      "auc_vs_train_peak_mem_mb.png", "latency_vs_batch.png"]
    for png in pngs:
        width, height = png_size(png)
        assert width >= 400 and height >= 300
        assert png.stat().st_size > 5_000

    page = (run / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("src='data:image/png;base64,") == len(pngs)
    assert "http://" not in page and "https://" not in page
    assert "<table>" in page and "train cost ($)" in page
    pick = next(r for r in report.rows if r.pick)
    assert f'<tr class="pick"><td>1 *</td><td class=\'id\'>{pick.id}</td>' in page
    assert "Serving plan: 1M/day" in page

    md = (run / "report.md").read_text()
    assert "| rank | id | size | precision | n | AUC | train cost ($) | p99 (ms) |" in md
    assert "![AUC against p99 (ms)](auc_vs_p99_ms.png)" in md

    trials = pd.read_csv(run / "trials.csv")
    records = [json.loads(line) for line in (run / "trials.jsonl").read_text().splitlines()]
    assert trials["id"].tolist() == [r["id"] for r in records]
    assert trials["metrics.auc"].tolist() == pytest.approx([r["metrics"]["auc"] for r in records])
    assert json.loads(trials["config.serve.batch_sizes"][0]) == [1, 64]
    assert set(trials["status"]) == {"ok"}

    front = pd.read_csv(run / "pareto.csv")
    assert sorted(front["id"]) == sorted(r.id for r in report.front)
    assert (front["rank"] == 1).all()
    assert front["auc_std"].notna().all()

    # a re-render that can draw nothing leaves no stale plot of its own behind, and the main ones alone
    (run / "auc_vs_p99_ms-where-auc-gt-2.png").write_bytes(b"stale")
    report, _, _ = render(run, format="none", where=["auc>2"])
    assert sorted(run.glob("*.png")) == pngs
    assert report.summary[-1] == "no plots: no trial left to show"


def test_printed_formats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # plots are checked above; leaving them out keeps four renders fast
    monkeypatch.setattr("costbench.report.files.write_plots", lambda *args: {})
    run = write_run(tmp_path)
    _, out, _ = render(run, format="csv")
    printed = pd.read_csv(io.StringIO(out))
    assert printed["rank"].tolist() == [1, 1, 1, 2]
    _, out, _ = render(run, format="json")
    document = json.loads(out)
    assert document["objectives"] == ["auc:max", "train_cost_usd:min", "p99_ms:min"]
    assert [row["rank"] for row in document["rows"]] == [1, 1, 1, 2]
    assert document["plan"] is None
    _, out, _ = render(run, format="markdown")
    assert out.startswith("# costbench report: demo")
    _, out, _ = render(run, format="none")
    assert out == ""


def test_planner_in_the_report_says_when_nothing_meets_the_slo(tmp_path: Path) -> None:
    report, _ = build(write_run(tmp_path), traffic="1M/day", slo_p99="1us", retrains_per_month=2)
    assert report.plans is not None and len(report.plans) == len(report.front) == 3
    assert all(p.batch_size is None for p in report.plans)
    assert "No front member meets the SLO: no server-scenario figure at it and no measured batch size" \
        in markdown(report)
    report, _ = build(write_run(tmp_path / "b"), traffic="1M/day", slo_p99="1.2ms", retrains_per_month=2,
                      min_quality=0.9)  # no low-quality flag: those are planned last whatever they cost
    totals = [p.total_usd_month for p in report.plans or []]
    assert totals[-1] is None  # s/fp32 has p99 2 ms at batch 1: cannot meet 1.2 ms
    assert totals[:-1] == sorted(totals[:-1])  # type: ignore[type-var]


def test_planner_in_the_report_uses_the_server_scenario_and_lists_invalid_ones(tmp_path: Path) -> None:
    run = write_run(tmp_path)
    records = [json.loads(line) for line in (run / "trials.jsonl").read_text().splitlines()]
    for i, record in enumerate(records):  # the first trial's search found nothing VALID, the others 1000 QPS
        qps = None if i == 0 else 1000.0
        runs = [{"target_qps": 800.0, "verdict": "INVALID", "valid": False, "p99_ms": 90.0,
                 "invalid_because": ["Performance constraints satisfied: NO"]}]
        record["details"]["scenario"] = {"scenario": "server", "slo_ms": 20.0, "max_batch": 64, "runs": runs,
                                         "max_qps_at_slo": qps}
        record["metrics"].update(max_qps_at_slo=qps, p99_at_slo_ms=None if qps is None else 9.0)
    (run / "trials.jsonl").write_text("".join(f"{json.dumps(r)}\n" for r in records))
    report, summary = build(run, traffic="2500/s", slo_p99="20ms", min_quality=0.9)
    scenario_plans = [p for p in report.plans or [] if p.basis.startswith("server scenario")]
    assert scenario_plans and all(p.devices == 3 and p.throughput == 1000.0 for p in scenario_plans)
    text = markdown(report)
    assert "server scenario (p99 <= 20 ms)" in text and "No front member meets" not in text
    assert (f"trial {records[0]['id']}: LoadGen server scenario: no run was VALID with p99 <= 20 ms; the lowest "
            "try, 800 QPS, was INVALID with p99 90 ms (Performance constraints satisfied: NO)") in summary


def test_through_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from costbench.cli import app

    monkeypatch.setattr("costbench.report.files.write_plots", lambda *args: {})
    run = write_run(tmp_path)
    result = CliRunner().invoke(app, ["report", str(run), "--where", "p99_mz<=1"])
    assert result.exit_code == 2
    result = CliRunner().invoke(app, ["report", str(run), "--by", "precision", "--where", "auc>=0.7",
                                      "--objectives", "auc:max,p99_ms:min", "--min-quality", "0.9",
                                      "--traffic", "1M/day", "--slo-p99", "20ms", "--retrains-per-month", "4",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["by"] == "precision"
    assert [p["batch_size"] for p in document["plan"]] == [64, 64, 64]
    assert [p["basis"] for p in document["plan"]] == ["batch 64 latency"] * 3  # no server scenario ran
    assert all(p["usd_per_million"] > 0 for p in document["plan"])


def test_identical_trials_are_marked_as_ties(tmp_path: Path) -> None:
    same = {"auc": 0.9, "train_cost_usd": 0.5, "p99_ms": 0.5}  # both xs trials: best on every objective

    def outcome(trial: Trial) -> tuple[str, dict[str, Any]]:
        return "ok", hand_metrics(trial) if trial.axes["model.size"] == "s" else dict(same)

    report, _ = build(write_run(tmp_path, outcome=outcome))
    labels = {(r.axes["model.size"], r.axes["precision"]): trials_table(report).cells[i][0]
              for i, r in enumerate(report.rows)}
    assert sorted([labels["xs", "fp32"], labels["xs", "int8"]]) == ["1=", "1= *"]
    assert labels["s", "fp32"] == labels["s", "int8"] == "2"  # a trade-off between them, not a tie


def test_narrow_terminal_drops_optional_columns_and_says_so(tmp_path: Path) -> None:
    report, _ = build(write_run(tmp_path))
    data = trials_table(report)
    assert fit(data, 400)[1] == []
    assert "train $" in fit(data, 80)[0].headers  # abbreviated before anything is dropped
    narrow, dropped = fit(data, 50)
    assert dropped and set(dropped) <= {data.short.get(h, h) for h in data.optional}
    assert {"rank", "id", "AUC", "p99 ms", "flags"} <= set(narrow.headers)
    out = io.StringIO()
    Console(file=out, width=50).print(to_rich(data, 50))
    assert "lack of width (see report.md)" in out.getvalue()
    assert max(len(line) for line in out.getvalue().splitlines()) <= 50
    assert header_lines("train_peak_mem_mb (MB)") == "train_peak_\nmem_mb\n(MB)"


def test_per_batch_names_must_have_been_measured(tmp_path: Path) -> None:
    run = write_run(tmp_path)
    report, _ = build(run, objectives="auc:max,p99_ms@64:min", where=["throughput@64>=12000"])
    # throughput@64 = 64000 / (4 x p99): 16000 and 32000 for xs, at most 10667 for s
    assert {r.axes["model.size"] for r in report.rows} == {"xs"}
    for options in ({"objectives": "auc:max,p99_ms@65:min"}, {"where": ["p99_ms@65<=3"]}):
        with pytest.raises(UserError, match=r"no trial measured 'p99_ms@65' \(did you mean 'p99_ms@64'\?\)"):
            build(run, **options)
    _, text = build(run, objectives="auc:max,train_energy_j:min")
    assert "objective train_energy_j is n/a in every trial" in text


def test_by_an_axis_is_not_shown_twice(tmp_path: Path) -> None:
    report, _ = build(write_run(tmp_path), by="precision")
    assert trials_table(report).headers.count("precision") == 1


def test_a_run_stopped_before_its_first_record(tmp_path: Path) -> None:
    run = write_run(tmp_path)
    (run / "trials.jsonl").unlink()
    report, text = build(run)
    assert report.rows == []
    assert "4 trial(s) in the sweep, 0 trial(s) recorded: 0 ok, 0 failed, 0 skipped; 4 missing" in text
