"""Golden test: re-rendering the committed example run gives the committed Pareto table and ranks.

A change to ranking, the pick or the CSV writer shows up here as a diff against results/examples/, which
the README reads; update both together (``costbench report results/examples/cpu-precision``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from costbench.report import build_report
from costbench.report.files import PARETO_CSV, write_files

EXAMPLE = Path(__file__).resolve().parents[1] / "results" / "examples" / "cpu-precision"
INPUTS = ("trials.jsonl", "sweep.yaml", "environment.json", "data_summary.json")


def test_rerendering_the_committed_example_gives_its_pareto_table(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for name in INPUTS:
        if (EXAMPLE / name).exists():
            shutil.copy(EXAMPLE / name, run / name)
    write_files(build_report(run))

    committed = pd.read_csv(EXAMPLE / PARETO_CSV)
    rendered = pd.read_csv(run / PARETO_CSV)
    assert list(rendered.columns) == list(committed.columns)
    key = ["id", "rank", "pick", "tie"]
    assert rendered[key].to_dict("records") == committed[key].to_dict("records"), "front, order and pick changed"
    pd.testing.assert_frame_equal(rendered, committed, check_exact=False, rtol=1e-12)


def test_the_committed_example_has_one_pick_on_the_front() -> None:
    front = pd.read_csv(EXAMPLE / PARETO_CSV)
    assert (front["rank"] == 1).all()
    assert front["pick"].sum() == 1
    assert set(front["precision"]) <= {"fp32", "bf16", "int8"}, "axis columns hold axis values, not metrics"
