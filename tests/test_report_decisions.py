"""Issue 15: a report you can decide from. One test per case the issue lists (1-8), then the run-dir contract."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from costbench.cli import app
from costbench.report import ReportOptions, render_report
from costbench.report.build import Report, build_report
from costbench.report.table import trials_table
from tests.rundirs import ENV, metrics, record, write

AXES = ("model.size", "precision")


def render(run: Path, width: int = 250, **options: Any) -> tuple[Report, str, str]:
    out, err = io.StringIO(), io.StringIO()
    report = render_report(run, ReportOptions(**options), console=Console(file=out, width=width),
                           stderr=Console(file=err, width=250))
    return report, out.getvalue(), err.getvalue()


def by_id(report: Report) -> dict[str, Any]:
    return {r.id: r for r in report.rows}


def four(prefix: str, auc_shift: float = 0.0, **extra: Any) -> list[dict[str, Any]]:
    """xs/s x fp32/int8, ids '<prefix>0'..'<prefix>3'."""
    grid = [("xs", "fp32", 0.866, 0.2), ("s", "fp32", 0.87, 0.3), ("xs", "int8", 0.865, 0.15), ("s", "int8", 0.8, 0.3)]
    return [record(f"{prefix}{i}", {"model.size": size, "precision": precision},
                   metrics=metrics(auc + auc_shift, p99), **extra)
            for i, (size, precision, auc, p99) in enumerate(grid)]


# 1. after editing a sweep and re-running into the same directory, old and new trials were ranked together
def test_1_only_the_sweep_as_it_now_stands_is_ranked(tmp_path: Path) -> None:
    old, new = four("old", auc_shift=0.01, **{"train.epochs": 3}), four("new", **{"train.epochs": 1})
    run = write(tmp_path / "run", old + new, trial_ids=[r["id"] for r in new])
    report = build_report(run)
    assert sorted(by_id(report)) == ["new0", "new1", "new2", "new3"]
    assert report.pick is not None and report.pick.id.startswith("new")
    text = "\n".join(report.summary)
    assert "4 trial(s) in the sweep, 4 trial(s) recorded" in text
    assert "4 record(s) from an earlier version of this sweep are not ranked; --all-records includes them" in text
    assert sorted(r["id"] for r in report.earlier) == ["old0", "old1", "old2", "old3"]
    assert {r["why_not_ranked"] for r in report.earlier} == {"configuration no longer in the sweep"}
    document = json.loads(render(run, format="json")[1])
    assert [r["id"] for r in document["earlier"]] == ["old0", "old1", "old2", "old3"]
    assert document["decision"].startswith("Ship new")
    everything = build_report(run, all_records=True)
    assert len(everything.rows) == 8
    assert "--all-records: 4 record(s) from an earlier version" in "\n".join(everything.summary)


# 2. a replaced CSV kept its old AUC: the data fingerprint is part of what a record is keyed on
def test_2_records_of_changed_data_are_not_ranked_and_say_why(tmp_path: Path) -> None:
    old = four("old", auc_shift=0.05, data_id="aaaaaaaaaaaa")
    new = four("new", data_id="bbbbbbbbbbbb")
    run = write(tmp_path / "run", old + new, trial_ids=[r["id"] for r in new])
    report, _, _ = render(run, format="none")
    assert {r.data_id for r in report.rows} == {"bbbbbbbbbbbb"}
    assert {r["why_not_ranked"] for r in report.earlier} == {
        "data changed (fingerprint aaaaaaaaaaaa, now bbbbbbbbbbbb)"}
    # with --all-records, a record of other data is a row of its own, never a repeat of the new one
    for old_record, new_record in zip(old, new, strict=True):
        old_record["group"] = new_record["group"]
    everything = build_report(write(tmp_path / "all", old + new, trial_ids=[r["id"] for r in new]), all_records=True)
    assert len(everything.rows) == 8 and all(r.n == 1 for r in everything.rows)
    page = (run / "report.html").read_text()
    assert "Records from an earlier version of this sweep (not ranked)" in page
    assert "data changed (fingerprint aaaaaaaaaaaa, now bbbbbbbbbbbb)" in page
    assert set(pd.read_csv(run / "pareto.csv")["data_id"]) == {"bbbbbbbbbbbb"}


# 3. a p99 56x its p50 was not flagged; the spike pushed the trial off the front and squashed the plot
def test_3_a_heavy_tail_is_noisy_its_position_says_so_and_the_plot_is_not_squashed(tmp_path: Path) -> None:
    records = [record("steady", {"precision": "fp32"}, metrics=metrics(0.877, 0.30, cost=3e-5)),
               record("spiky", {"precision": "int8"}, metrics=metrics(0.877, 4.19, p50=0.074, cost=2e-5)),
               record("slow", {"precision": "bf16"}, metrics=metrics(0.870, 0.35, cost=4e-5))]
    run = write(tmp_path / "run", records, objectives=["auc:max", "p99_ms:min", "train_cost_usd:min"])
    report, _, _ = render(run, format="none")
    rows = by_id(report)
    assert "noisy" in rows["spiky"].flags
    assert "noisy" not in rows["steady"].flags
    # on the front anyway (cheapest), so its position was not decided by the spike
    assert rows["spiky"].rank == 1 and "noisy-position" not in rows["spiky"].flags
    assert "p99 was more than 10x p50" in "\n".join(report.summary)
    # with the same training cost, the spike alone keeps it off the front: the table says so
    records[1]["metrics"]["train_cost_usd"] = 3e-5
    report = build_report(write(tmp_path / "b", records, objectives=["auc:max", "p99_ms:min", "train_cost_usd:min"]))
    rows = by_id(report)
    assert rows["spiky"].rank == 2 and "noisy-position" in rows["spiky"].flags
    table = trials_table(report)
    assert "noisy-position" in table.cells[[r.id for r in report.rows].index("spiky")][-1]
    assert "front position decided by a noisy figure" in "\n".join(report.summary)
    # the rounds' p99s disagreeing by more than 50% flags it too
    records[0]["details"]["latency"] = {"batch_sizes": {"1": {"round_p99s_ms": [0.3, 0.31, 0.62]}}}
    report = build_report(write(tmp_path / "c", records))
    assert "noisy" in by_id(report)["steady"].flags
    # the AUC-vs-p99 plot goes to a log axis (4.19 / 0.30 > 10), said in its title
    from costbench.report.plots import LOG_SPAN

    assert LOG_SPAN < 4.19 / 0.30
    page = (run / "report.html").read_text()
    assert "p99 (ms) (log scale)" in page


# 4. the default memory objective was the process (392-471 MB for models of 9-675 KB), not the model
def test_4_the_default_memory_objective_is_the_model_own(tmp_path: Path) -> None:
    # int8 loads libraries (+28 MB of process) but its model needs less than fp32's
    records = [record("fp32", {"precision": "fp32"}, metrics=metrics(0.877, 0.3, peak=392, model_mem=6.0)),
               record("int8", {"precision": "int8"}, metrics=metrics(0.877, 0.3, peak=420, model_mem=4.0))]
    run = write(tmp_path / "run", records, run_json=False)
    (run / "sweep.yaml").write_text("name: decide\ngrid: {precision: [fp32, int8]}\n")  # no objectives: defaults
    report = build_report(run)
    assert [str(o) for o in report.objectives][-1] == "model_train_mem_mb:min"
    assert by_id(report)["int8"].rank == 1 and by_id(report)["int8"].pick
    assert by_id(report)["fp32"].rank == 2
    headers = trials_table(report).headers
    assert "train memory (model) (MB)" in headers
    from costbench.report.machine import machine_lines

    assert machine_lines(report)[0].startswith("process baseline memory: 386-416 MB")
    # a run made before model_train_mem_mb existed ranks on the training growth instead, and says so
    for r in records:
        for name in ("model_train_mem_mb", "process_baseline_mem_mb"):
            del r["metrics"][name]
    report = build_report(write(tmp_path / "old", records))
    assert [str(o) for o in report.objectives][-1] == "train_mem_delta_mb:min"
    assert "model_train_mem_mb not recorded (run made by costbench < 0.2): ranking on train_mem_delta_mb" in \
        "\n".join(report.summary)
    # asking for the process peak says what it includes, with the baseline shown apart
    records = [record("a", {"precision": "fp32"}, metrics=metrics(0.877, 0.3, peak=392, model_mem=6.0))]
    report = build_report(write(tmp_path / "peak", records), objectives="auc:max,train_peak_mem_mb:min")
    assert "includes the process baseline (386-386 MB here)" in "\n".join(report.summary)


# 5. +0.001 AUC outweighed an 18x latency difference; a chance-level model was recommended; planned first
def test_5_the_pick_ties_practically_equal_quality_and_never_takes_a_weak_model(tmp_path: Path) -> None:
    records = [record("bf16", {"model.family": "mlp", "precision": "bf16"}, metrics=metrics(0.8778, 4.57, p50=4.0)),
               record("int8", {"model.family": "mlp", "precision": "int8"}, metrics=metrics(0.8768, 0.26)),
               record("chance", {"model.family": "logreg", "precision": "fp32"},
                      metrics=metrics(0.499, 0.05, cost=1e-6))]
    run = write(tmp_path / "run", records, objectives=["auc:max", "p99_ms:min", "train_cost_usd:min"])
    report = build_report(run, traffic="5B/day", slo_p99="20ms")  # 1, 3 and 43 devices for chance, int8, bf16
    rows = by_id(report)
    assert rows["chance"].rank == 1 and "low-quality" in rows["chance"].flags  # on the front, flagged
    assert report.pick is rows["int8"]  # 0.001 AUC is a tie; p99 decides
    assert report.plans is not None and [p.row.id for p in report.plans] == ["int8", "bf16", "chance"]
    assert report.plans[-1].devices == 1 and "low-quality: listed last" in report.plans[-1].note
    assert "within 0.001 of the best" in "\n".join(report.summary)
    # a stricter tolerance makes the most accurate the pick
    assert build_report(run, tie_tolerance=0.0).pick.id == "bf16"  # type: ignore[union-attr]
    # intervals that overlap count as a tie even beyond the tolerance
    records[1]["metrics"].update(auc=0.870, auc_ci_low=0.862, auc_ci_high=0.878)
    records[0]["metrics"].update(auc_ci_low=0.870, auc_ci_high=0.885)
    assert build_report(write(tmp_path / "ci", records, objectives=["auc:max", "p99_ms:min"])).pick.id == "int8"  # type: ignore[union-attr]
    # everything at chance level: nothing is recommended
    only = [record("coin", {"precision": "fp32"}, metrics=metrics(0.51, 0.1))]
    report = build_report(write(tmp_path / "coin", only))
    assert report.pick is None
    assert "no recommended pick" in "\n".join(report.summary)


# 6. the HTML was a spreadsheet dump: too wide, raw names, mixed number formats, no description/machine/failures
def test_6_the_html_reads_like_a_decision(tmp_path: Path) -> None:
    records = [record("aaaa00000001", {"model.size": "xs", "precision": "fp32"},
                      metrics=metrics(0.8777, 0.23, cost=2.418e-05, auc_ci_low=0.8712, auc_ci_high=0.8842)),
               record("aaaa00000002", {"model.size": "m", "precision": "bf16"},
                      metrics=metrics(0.8789, 4.57, cost=0.000129, model_bytes=674678)),
               record("aaaa00000003", {"model.size": "xs", "precision": "fp16"}, "skipped",
                      reason="fp16 training is not supported on this CPU"),
               record("aaaa00000004", {"model.size": "s", "precision": "int8"}, "failed",
                      reason="NaN loss at epoch 2 step 14")]
    records[0]["metrics"]["auc_delta_vs_fp32"] = -0.00001
    run = write(tmp_path / "run", records, description="What bf16 and int8 buy on a CPU.")
    render(run, format="none")
    page = (run / "report.html").read_text()
    card = re.search(r"<div id='decision'.*?</div></div>", page, re.S)
    assert card is not None
    assert "Ship aaaa00000001 (xs fp32): AUC 0.8777 ± 0.0065 (95% interval), p99 0.23 ms, $0.0022 per million " \
           "predictions" in card.group(0)
    assert "The most accurate trial aaaa00000002 (m bf16) is 0.0012 AUC better and 5.3× dearer per prediction." \
        in card.group(0)
    body = page[page.index("<table>"):]
    for header in ("<th>AUC</th>", "<th>p99 (ms)</th>", "<th>train cost ($)</th>", "<th>model size (KB)</th>",
                   "<th>serving ($ per million)</th>"):
        assert header in body
    assert "train_cost_usd" not in body.split("<h2>How to read")[0]
    assert "<td>0.000024</td>" in body and "<td>0.000129</td>" in body  # one format per column
    assert "e-0" not in body.split("<h2>How to read")[0] and "-0.0000" not in page
    assert "<td>675</td>" in body and "<td>24</td>" in body  # bytes shown as KB
    assert "What bf16 and int8 buy on a CPU." in page
    assert "Intel(R) Xeon(R) Processor" in page and "torch 2.13.0+cpu" in page
    assert "fp16 training is not supported on this CPU" in page and "NaN loss at epoch 2 step 14" in page
    assert "http://" not in page and "https://" not in page  # opens from disk
    assert "<svg class=\"scatter\"" in page and "<title>aaaa00000002 model.size=m, precision=bf16" in page
    # an all-failed run shows its failures, not an empty table
    failed = [record(f"f{i}", {"precision": p}, "failed", reason=f"crash {i}") for i, p in enumerate(["fp32", "int8"])]
    _report, _, _ = render(write(tmp_path / "failed", failed), format="none")
    page = (tmp_path / "failed" / "report.html").read_text()
    assert "Nothing to ship: no trial finished ok" in page
    assert "crash 0" in page and "crash 1" in page


# 7. at 80 columns numbers broke mid-digit and ids wrapped; the live display lost its bar; help lost [fp32,int8]
def test_7_a_terminal_of_80_columns_never_breaks_a_number(tmp_path: Path) -> None:
    records = [record(f"{i:012x}", {"model.family": fam, "model.size": size, "precision": prec,
                                    "train.batch_size": batch},
                      metrics=metrics(0.8 + i / 1000, 0.2 + i / 100, cost=(i + 1) * 1.2345e-5, peak=390.0 + i))
               for i, (fam, size, prec, batch) in enumerate(
                   [("mlp", "xs", "fp32", 512), ("dcn", "s", "bf16", 2048), ("mlp", "m", "int8", 512),
                    ("dcn", "xs", "int8", 2048)])]
    report, out, _ = render(write(tmp_path / "run", records), width=80)
    table = out.split("rank 1 = Pareto front")[0]
    assert max(len(line) for line in table.splitlines()) <= 80
    for row in report.rows:
        assert row.id in table  # ids whole, on one line
        assert f"{row.metrics['auc']:.4f}" in table  # numbers whole, on one line
    assert re.search(r"\b0\.0000\d\d\b", table)  # training cost in fixed point, not broken


def test_7_the_live_display_keeps_bar_count_and_eta_at_80_columns() -> None:
    from costbench.progress import SweepProgress

    class FakeTrial:
        def __init__(self, i: int) -> None:
            self.id, self.repeat = f"{i:012x}", 0
            self.axes = {"model.family": "transformer", "model.size": "xl", "precision": "bf16",
                         "train.batch_size": 2048, "data.rows": 1000000}

    trials = [FakeTrial(i) for i in range(10)]
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    progress = SweepProgress(console, trials, done=3, counts=__import__("collections").Counter(ok=3))  # type: ignore[arg-type]
    progress.live = True
    with progress:
        progress.started(trials[0].id)
        progress.phase(trials[0].id, "training epoch 2/3")
        assert progress._progress is not None
        console.print(progress._progress.get_renderable())
    assert "000000000000 training epoch 2/3" in out.getvalue()  # the phase is kept; the axes are cut
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    lines = [line for line in text.splitlines() if "trials" in line and "ok 3" in line]
    assert lines, out.getvalue()
    overall = lines[-1]
    assert len(overall) <= 80
    assert "━" in overall  # the bar
    assert "3/13" in overall  # the count
    assert re.search(r"-:--:--|\d:\d\d:\d\d\s*$", overall)  # the ETA column, last


def test_7_help_shows_the_brackets_of_a_yaml_list() -> None:
    result = CliRunner().invoke(app, ["sweep", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "grid.precision=[fp32,int8]" in " ".join(result.stdout.split())


# 8. `report --where` overwrote the main report files with the filtered version
def test_8_where_writes_files_of_its_own(tmp_path: Path) -> None:
    run = write(tmp_path / "run", four("t"))
    render(run, format="none")
    main = {name: (run / name).read_bytes() for name in ("report.html", "report.md", "pareto.csv", "trials.csv")}
    plots = sorted(p.name for p in run.glob("*.png"))
    _report, out, _ = render(run, where=["p99_ms<=0.25"])
    assert {name: (run / name).read_bytes() for name in main} == main
    for name in ("report-where-p99_ms-le-0.25.html", "report-where-p99_ms-le-0.25.md",
                 "pareto-where-p99_ms-le-0.25.csv", "trials-where-p99_ms-le-0.25.csv"):
        assert (run / name).exists(), name
    assert "report-where-p99_ms-le-0.25.html" in out
    assert set(pd.read_csv(run / "pareto-where-p99_ms-le-0.25.csv")["id"]) <= {"t0", "t2"}
    assert sorted(p.name for p in run.glob("*.png") if "-where-" not in p.name) == plots
    assert any("-where-p99_ms-le-0.25" in p.name for p in run.glob("*.png"))


# the run-directory contract (issue 12): run.json, environments, schemas; report reads only the run directory
def test_environments_are_read_and_a_mix_is_warned_about(tmp_path: Path) -> None:
    other = {**ENV, "host": "gpu-box", "cpu": {"model": "AMD EPYC 9654", "usable_cores": 16, "flags": {}}}
    records = four("t")
    records[1]["env_id"] = records[3]["env_id"] = "e1e1e1e1e1e1"
    run = write(tmp_path / "run", records, envs={"e0e0e0e0e0e0": ENV, "e1e1e1e1e1e1": other})
    report = build_report(run)
    assert any("ran in 2 different environments" in w and "--by env_id" in w for w in report.warnings)
    grouped = build_report(run, by="env_id")
    assert {r.by for r in grouped.rows} == {"e0e0e0e0e0e0", "e1e1e1e1e1e1"}
    assert sum(r.pick for r in grouped.rows) == 2
    from costbench.report.machine import machine_lines

    lines = machine_lines(report)
    assert any("AMD EPYC 9654" in line and "gpu-box" in line for line in lines)
    assert any("Intel(R) Xeon(R) Processor" in line and "torch 2.13.0+cpu" in line for line in lines)


def test_newer_schemas_are_said_clearly(tmp_path: Path) -> None:
    records = four("t")
    records[0]["schema"] = 3
    run = write(tmp_path / "run", records)
    data = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**data, "schema": 2}))
    report = build_report(run)
    text = "\n".join(report.warnings)
    assert "1 record(s) have schema 3, newer than this costbench reads (2); upgrade costbench" in text
    assert "run.json has schema 2, newer than this costbench reads (1)" in text


def test_an_old_run_without_run_json_still_reports(tmp_path: Path) -> None:
    """results/examples/cpu-precision is such a run: sweep.yaml, environment.json, schema-1 records."""
    example = Path(__file__).parent.parent / "results" / "examples" / "cpu-precision"
    report = build_report(example)
    assert len(report.rows) == 36 and report.pick is not None
    assert "missing trials unknown (run made by costbench < 0.2)" in report.warnings
    assert report.description.startswith("What bf16 and int8 buy")
    assert report.axes == ["model.family", "model.size", "precision", "train.batch_size"]
    assert "environment.json" in report.environments


@pytest.mark.slow
def test_report_never_imports_torch(tmp_path: Path) -> None:
    run = write(tmp_path / "run", four("t"))
    code = ("import sys, io; from rich.console import Console; from costbench.report import ReportOptions, "
            f"render_report; render_report({str(run)!r}, ReportOptions(format='none'), Console(file=io.StringIO()), "
            "Console(file=io.StringIO())); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_plots_show_every_axis_batch_size_too() -> None:
    """Colour, marker and one panel per combination of the rest: no grid axis is left off a plot."""
    from costbench.report.plots import encoding

    report = build_report(Path(__file__).parent.parent / "results" / "examples" / "cpu-precision")
    colour, marker, panels = encoding(report.rows, report.axes)
    assert (colour, marker) == ("precision", "model.size")
    assert sorted(panels) == ["model.family", "train.batch_size"]


def test_a_grid_over_model_params_dicts_renders_every_file(tmp_path) -> None:
    """A grid over ``model.params`` (dict values) is a colour, marker or panel like any axis: the plots
    key it by its JSON text instead of failing on an unhashable dict, and every table shows it."""
    params = [{}, {"subsample": 0.75, "subsample_freq": 1}]
    records = [record(f"p{i}{j}", {"model.size": size, "model.params": p}, metrics=metrics(0.8 + i / 100 + j / 1000,
                                                                                            1.0 + i))
               for i, size in enumerate(["xs", "s"]) for j, p in enumerate(params)]
    run = write(tmp_path / "run", records)
    render_report(run, ReportOptions(format="none"), Console(file=io.StringIO()), Console(file=io.StringIO()))
    assert (run / "auc_vs_train_cost_usd.png").stat().st_size > 10_000
    assert "subsample_freq" in (run / "report.md").read_text()
    grouped = build_report(run, by="model.params")  # --by model.params: one front per dict
    assert len({row.by for row in grouped.rows}) == 2 and sum(row.pick for row in grouped.rows) == 2
