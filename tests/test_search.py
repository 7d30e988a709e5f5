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
from costbench.spec import load_sweep, trial_id
from costbench.spec.schema import SearchConfig
from costbench.store import read_records
from tests.fake_trials import write_sweep

pytest.importorskip("optuna", reason='the [search] extra is not installed: pip install "costbench[search]"; CI '
                                   'installs it')
runner = CliRunner()
SEEDS = list(range(12))  # fake trials: auc 0.5 + seed/1000, p99_ms seed % 7


def search_sweep(tmp_path, ranges=None, **search):
    """Fake trials, one per seed; ``ranges``: grid axes sampled from {low, high, ...} beside the seed."""
    return write_sweep(tmp_path, SEEDS, objectives=["auc:max", "p99_ms:min"], **({"grid": {"seed": SEEDS, **ranges}}
                                                                                  if ranges else {}),
                       search={"sampler": "tpe", "n_trials": 4, "seed": 1, **search})


RANGES = {"train.lr": {"low": 1e-4, "high": 1e-2, "log": True}, "train.batch_size": {"low": 256, "high": 2048,
                                                                                     "step": 256}}


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


def test_validate_lists_a_range_searchs_corners_and_a_plain_grid_refuses_a_range(tmp_path):
    sweep_file = search_sweep(tmp_path, RANGES)
    result = runner.invoke(app, ["validate", str(sweep_file)])
    assert result.exit_code == 0 and "the 48 trial(s) listed are its corners" in result.output.replace("\n", " ")
    result = runner.invoke(app, ["validate", str(sweep_file), "--set", "search=null"])
    assert result.exit_code == 2 and "only a search samples" in result.output


def test_ranges_are_optunas_int_and_float_distributions_and_rebuild_from_records(tmp_path):
    from optuna.distributions import FloatDistribution, IntDistribution

    sweep = load_sweep(search_sweep(tmp_path, RANGES))
    assert len(sweep.trials) == len(SEEDS) * 4, "listed up front: the corners (each range at low and at high)"
    search = Search(SearchConfig(n_trials=6), sweep.spec.objectives, sweep.space, sweep.trials_at, {})
    assert search.distributions["train.lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert search.distributions["train.batch_size"] == IntDistribution(256, 2048, step=256)
    batch = search.next_batch(4)
    assert len(batch) == 4 and search.listed is None
    for trial in batch:
        assert 1e-4 <= trial.config["train"]["lr"] <= 1e-2 and trial.config["train"]["batch_size"] % 256 == 0
        assert trial.id == trial_id(trial.config, trial.data_id), "the id is the hash of the resolved config"
        assert search.proposed_by[search.key(trial)] == "tpe"
    latest = {t.id: {"id": t.id, "group": t.group, "axes": t.axes, "status": "ok",
                     "metrics": {"auc": 0.5 + t.config["train"]["lr"], "p99_ms": t.config["train"]["batch_size"] / 256}}
              for t in batch}
    search.finish_batch(latest)
    again = Search(SearchConfig(n_trials=6), sweep.spec.objectives, sweep.space, sweep.trials_at, latest)
    assert again.done == 4 and len(again.study.trials) == 4, "every recorded point, rebuilt from its record"
    assert not {t.id for t in again.next_batch(2)} & set(latest)


def test_a_stopped_search_counts_what_is_missing_against_the_points_its_space_has(tmp_path, monkeypatch):
    """A listed space of 3 points under n_trials 10: one failure stops it, 2 points are left, not 9."""
    monkeypatch.setenv(TRIAL_FN_ENV, "tests.fake_trials:by_seed")
    sweep_file = write_sweep(tmp_path, [100, 101, 102], objectives=["auc:max"],
                             search={"sampler": "random", "n_trials": 10, "seed": 0})
    out = tmp_path / "run"
    result = runner.invoke(app, ["sweep", str(sweep_file), "--out", str(out), "--workers", "1", "--fail-fast"])
    assert result.exit_code == 1, result.output
    assert len(ids(out)) == 1
    assert "stopped by --fail-fast: 2 trial(s) not run" in " ".join(result.output.split())


def test_the_driver_reads_trials_jsonl_a_fixed_number_of_times_however_many_batches(tmp_path, monkeypatch):
    """Each batch's records reach the study as they are stored: the file is not re-read per batch (that
    cost grows with the square of the points searched)."""
    import costbench.engine as engine

    monkeypatch.setenv(TRIAL_FN_ENV, "tests.fake_trials:by_seed")
    reads = []
    real = engine.read_records
    monkeypatch.setattr(engine, "read_records", lambda run_dir: reads.append(run_dir) or real(run_dir))
    sweep_file, out = search_sweep(tmp_path, n_trials=6), tmp_path / "run"
    result = runner.invoke(app, ["sweep", str(sweep_file), "--out", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert len(ids(out)) == 6 == len(set(ids(out)))  # 6 batches of one point
    assert len(reads) <= 3, "read at the start, for the search, and at the end; not once per batch"


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
    sweep_file, out = search_sweep(tmp_path, RANGES, n_trials=5), tmp_path / "run"  # a seed list and two ranges
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
    records = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert Counter(r["status"] for r in records) == {"ok": 5} and {r["proposed_by"] for r in records} == {"tpe"}
    assert all(1e-4 <= r["config"]["train"]["lr"] <= 1e-2 for r in records)


def test_a_listed_float_range_ends_at_its_high_end_as_optuna_proposes_it() -> None:
    """0.1 + 3 * 0.2 is 0.7000000000000001 in floats: listed so, the point would be outside the range and
    never match Optuna's proposal (which Optuna clips to 0.7)."""
    from costbench.search import finite_points
    from costbench.spec.schema import GridRange

    points = finite_points({"train.lr": GridRange(low=0.1, high=0.7, step=0.2), "model.size": ["xs", "s"]})
    assert len(points) == 8
    assert max(p["train.lr"] for p in points) == 0.7
    assert all(0.1 <= p["train.lr"] <= 0.7 for p in points)
