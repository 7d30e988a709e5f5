"""The `search` section: Optuna picks grid points, the executor runs them, trials.jsonl is the store of record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from typer.testing import CliRunner

from costbench.cli import app
from costbench.engine import TRIAL_FN_ENV
from costbench.search import Search, constraint_values, objective_values
from costbench.spec import load_sweep
from costbench.spec.schema import SearchConfig
from costbench.store import read_records
from tests.fake_trials import write_sweep

pytest.importorskip("optuna")
runner = CliRunner()
SEEDS = list(range(12))  # fake trials: auc 0.5 + seed/1000, p99_ms seed % 7


def search_sweep(tmp_path, **search):
    return write_sweep(tmp_path, SEEDS, objectives=["auc:max", "p99_ms:min"],
                       search={"sampler": "tpe", "n_trials": 4, "seed": 1, **search})


def ids(run_dir):
    records, warnings = read_records(run_dir)
    assert warnings == []
    return [r["id"] for r in records]


def test_objectives_are_the_mean_over_repeats_and_constraints_are_optunas_sign():
    recs = [{"status": "ok", "metrics": {"auc": 0.8, "p99_ms": 4.0}},
            {"status": "ok", "metrics": {"auc": 0.6, "p99_ms": 6.0}}]
    assert objective_values(recs, ["auc:max", "p99_ms:min"]) == pytest.approx([0.7, 5.0])
    assert objective_values(recs, ["auc:max", "train_cost_usd:min"]) is None  # n/a: the point is failed
    assert objective_values([{"status": "failed", "metrics": {}}], ["auc:max"]) is None
    assert constraint_values(recs, ["p99_ms <= 5", "auc >= 0.7"]) == {"p99_ms <= 5": 1.0,
                                                                         "auc >= 0.7": pytest.approx(0.1)}


def test_a_bad_constraint_is_one_line_and_exit_2(tmp_path):
    result = runner.invoke(app, ["validate", str(search_sweep(tmp_path, constraints=["p99 < 5"]))])
    assert result.exit_code == 2 and "must read METRIC <= NUMBER or METRIC >= NUMBER" in result.output


def test_the_study_is_rebuilt_from_records_without_running_anything(tmp_path):
    sweep = load_sweep(search_sweep(tmp_path))
    latest = {t.id: {"id": t.id, "group": t.group, "axes": t.axes, "status": "ok",
                     "metrics": {"auc": 0.5 + t.config["seed"] / 1000, "p99_ms": float(t.config["seed"] % 7)}}
              for t in sweep.trials[:5]}
    search = Search(SearchConfig(n_trials=8, constraints=["p99_ms <= 3"]), sweep.spec.objectives, sweep.space,
                    sweep.trials_at, latest)
    assert search.done == 5 and len(search.study.trials) == 5
    best = {t.params["seed"] for t in search.study.best_trials}
    assert best == {0, 1, 2, 3}, "seed 4 (auc .504, p99 4) would be on the front but breaks p99 <= 3"
    batch = search.next_batch(2)
    assert len(batch) == 2 and not {t.id for t in batch} & set(latest), "never a recorded point again"


@pytest.mark.slow
def test_a_search_runs_n_trials_points_and_a_resume_adds_only_new_ones(tmp_path, monkeypatch):
    monkeypatch.setenv(TRIAL_FN_ENV, "tests.fake_trials:by_seed")
    sweep_file, out = search_sweep(tmp_path), tmp_path / "run"
    result = runner.invoke(app, ["sweep", str(sweep_file), "--out", str(out), "--workers", "2"])
    assert result.exit_code == 0, result.output
    first = ids(out)
    grid = {t.id for t in load_sweep(sweep_file).trials}
    assert len(first) == 4 == len(set(first)) and set(first) <= grid

    result = runner.invoke(app, ["sweep", str(sweep_file), "--out", str(out), "--set", "search.n_trials=6"])
    assert result.exit_code == 0, result.output
    after = ids(out)
    assert after[:4] == first and len(after) == 6 == len(set(after)), "2 new points, none run twice"
    run = json.loads((out / "run.json").read_text())
    assert sorted(run["trial_ids"]) == sorted(after), "the report ranks the points searched, none 'missing'"
    report = runner.invoke(app, ["report", str(out)])
    assert report.exit_code == 0 and "6 trial(s) in the sweep, 6 trial(s) recorded: 6 ok" in report.output
    assert "missing" not in report.output


@pytest.mark.slow
def test_kill_9_mid_search_then_resume_loses_nothing_and_duplicates_nothing(tmp_path):
    sweep_file, out = search_sweep(tmp_path, n_trials=5), tmp_path / "run"
    command = [sys.executable, "-m", "costbench", "sweep", str(sweep_file), "--out", str(out), "--workers", "1"]
    env = {**os.environ, TRIAL_FN_ENV: "tests.fake_trials:by_seed"}
    driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.monotonic() + 120
    while not (out / "trials.jsonl").exists() or len(ids(out)) < 2:
        assert time.monotonic() < deadline, "no 2 records in 2 minutes"
        assert driver.poll() is None, "the search ended before it could be killed"
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    killed_at = ids(out)
    assert 2 <= len(killed_at) < 5

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = ids(out)
    assert after[:len(killed_at)] == killed_at and len(after) == 5 == len(set(after))
    assert Counter(json.loads(line)["status"] for line in (out / "trials.jsonl").read_text().splitlines()) == {"ok": 5}
