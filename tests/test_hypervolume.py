"""Hypervolume: the exact volume against hand computations, the normalisation, and a search run's report view."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from costbench.hypervolume import REFERENCE, history, hypervolume, normalise
from costbench.report.search_view import HYPERVOLUME_CSV
from tests.test_report import render, write_run


def test_two_points_in_2d_are_their_union():
    # boxes 0.8 x 0.4 and 0.5 x 0.7, overlapping in 0.5 x 0.4
    assert hypervolume([[0.2, 0.6], [0.5, 0.3]], [1.0, 1.0]) == pytest.approx(0.32 + 0.35 - 0.20)


def test_3d_union_dominated_and_out_of_reference_points():
    # 1 x 1 x 0.5 and 0.5 x 0.5 x 1, overlapping in 0.5 x 0.5 x 0.5
    assert hypervolume([[0, 0, 0.5], [0.5, 0.5, 0]], [1, 1, 1]) == pytest.approx(0.5 + 0.25 - 0.125)
    assert hypervolume([[0, 0, 0.5], [0.5, 0.5, 0], [0.6, 0.6, 0.6], [1.2, 0, 0]], [1, 1, 1]) == \
        pytest.approx(0.625), "a dominated point and one beyond the reference add nothing"
    assert hypervolume([], [1, 1, 1]) == 0.0
    assert history([[0.5, 0.5, 0.5], [0, 0, 0.5]], [1, 1, 1]) == pytest.approx([0.125, 0.5])


def test_agrees_with_optunas_own_computation_on_random_fronts():
    # private to Optuna: a cross-check, not a dependency
    hv = pytest.importorskip("optuna._hypervolume", reason='needs Optuna: pip install "costbench[search]"')
    import numpy as np

    rng = random.Random(3)
    for dims in (2, 3, 4):
        points = [[rng.random() for _ in range(dims)] for _ in range(25)]
        assert hypervolume(points, [1.1] * dims) == pytest.approx(
            hv.compute_hypervolume(np.array(points), np.array([1.1] * dims)))


def test_normalise_negates_max_objectives_and_logs_those_spanning_decades():
    # auc:max linear; bytes:min spans 1000x, so log10: 1, 10, 1000 -> 0, 1/3, 1; cost:min spans 2x, linear
    scaled = normalise([[0.8, 1, 1.0], [0.9, 10, 2.0], [0.85, 1000, 1.5]], [True, False, False])
    expected = [[1.0, 0.0, 0.0], [0.0, 1 / 3, 1.0], [0.5, 1.0, 0.5]]
    assert [v for point in scaled for v in point] == pytest.approx([v for point in expected for v in point])


def test_a_search_run_reports_its_hypervolume_point_after_point(tmp_path):
    run = write_run(tmp_path)  # xs/fp32, xs/int8, s/fp32, s/int8 in this order; auc:max, cost:min, p99:min
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "search": {"sampler": "tpe", "n_trials": 4, "seed": 0}}))
    records = [json.loads(line) for line in (run / "trials.jsonl").read_text().splitlines()]
    for record, who in zip(records, ["tpe", "tpe", "fill-in", None], strict=True):
        if who:
            record["proposed_by"] = who
    (run / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    render(run)
    # by hand, scaled to [0, 1] (none spans 10x: all linear), reference 1.1:
    # xs/fp32 (0.2667, 0, 0.3333), xs/int8 (0.3, 0, 0), s/fp32 (0, 1, 1), s/int8 (1, 1, 0.6667) inside xs/int8's box
    first = (1.1 - 0.04 / 0.15) * 1.1 * (1.1 - 1 / 3)
    second = 0.8 * 1.1 * 1.1 + first - 0.8 * 1.1 * (1.1 - 1 / 3)
    third = second + 1.1 * 0.1 * 0.1 - (1.1 - 0.04 / 0.15) * 0.1 * 0.1
    curve = pd.read_csv(run / "hypervolume.csv")
    assert curve["points"].tolist() == [1, 2, 3, 4]
    assert curve["hypervolume"].tolist() == pytest.approx([first, second, third, third], abs=1e-6)
    assert curve["share_of_final"].iloc[-1] == 1.0
    assert (run / "hypervolume.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    md = (run / "report.md").read_text()
    assert f"reference point {REFERENCE:g} on every objective" in md and "scaled to [0, 1]" in md
    assert "4 point(s) searched (2 by tpe, 1 random fill-in, 1 proposer not recorded)" in md
    page = (run / "report.html").read_text()
    assert "| proposed by |" in md and "![Hypervolume against points searched](hypervolume.png)" in md
    assert "<th>proposed by</th>" in page and "<h2>The search</h2>" in page and "reference point 1.1" in page
    assert "alt='Hypervolume against points searched' src='data:image/png;base64," in page
    trials = pd.read_csv(run / "trials.csv")
    assert trials["proposed_by"].fillna("-").tolist() == ["tpe", "tpe", "fill-in", "-"]


def test_a_plain_grid_run_has_no_hypervolume_view(tmp_path):
    run = write_run(tmp_path)
    report, _, _ = render(run)
    assert report.search is None and not (run / "hypervolume.csv").exists()
    assert "proposed by" not in (run / "report.md").read_text()


@pytest.mark.slow
def test_the_committed_search_renders_without_torch_or_optuna_and_the_same_curve(tmp_path):
    example = Path(__file__).resolve().parents[1] / "results" / "examples" / "search"
    run = tmp_path / "search"
    shutil.copytree(example, run)
    (run / HYPERVOLUME_CSV).unlink()
    code = ("import sys, io; from rich.console import Console; from costbench.report import ReportOptions, "
            f"render_report; render_report({str(run)!r}, ReportOptions(), Console(file=io.StringIO()), "
            "Console(file=io.StringIO())); print(sorted(m for m in ('torch', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert (run / HYPERVOLUME_CSV).read_text() == (example / HYPERVOLUME_CSV).read_text()
    assert len(pd.read_csv(run / HYPERVOLUME_CSV)) == 40
