"""`costbench export mlflow` and `costbench sweep --track mlflow`, read back from a real MLflow store.

No mock: each test writes a SQLite MLflow store in its run directory and reads it with MlflowClient.
MLflow is the `[mlflow]` extra (CI installs it); creating a store takes seconds, hence `slow`.
"""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from costbench.cli import app
from costbench.export.mlflow import INSTALL_HINT, metric_name, trial_metrics, trial_params
from tests import rundirs

runner = CliRunner()
NO_MLFLOW = 'the [mlflow] extra is not installed: pip install "costbench[mlflow]"; CI installs it'


def test_metric_names_mlflow_rejects_are_rewritten_and_n_a_is_left_out():
    assert metric_name("p99_ms@64") == "p99_ms_at_64"
    assert metric_name("auc (test)") == "auc _test_"
    record = rundirs.record("a", {"model.size": "s"}, metrics={"auc": 0.8, "p99_ms@1": 2.0, "energy_j": None,
                                                               "flag": True, "nan": float("nan")})
    assert trial_metrics(record) == {"auc": 0.8, "p99_ms_at_1": 2.0}
    params = trial_params(record)
    assert params["model.size"] == "s" and params["serve.batch_sizes"] == "[1, 64]"
    assert params["serve.batch_size_for_objective"] == "null" and params["train.epochs"] == "3"


def test_without_mlflow_the_export_says_what_to_install_and_exits_2(tmp_path, monkeypatch):
    run = rundirs.write(tmp_path / "run", [rundirs.record("a", {"model.size": "s"},
                                                          metrics=rundirs.metrics(0.8, 1.0))])
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` now raises ImportError
    result = runner.invoke(app, ["export", "mlflow", str(run)])
    assert result.exit_code == 2
    assert INSTALL_HINT in result.output and "Traceback" not in result.output
    assert 'pip install "costbench[mlflow]"' in INSTALL_HINT


def test_a_wrong_run_directory_is_one_line_and_exit_2(tmp_path):
    result = runner.invoke(app, ["export", "mlflow", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such directory" in result.output


def _records():
    best = rundirs.record("aaaaaaaaaaaa", {"model.size": "s", "precision": "fp32"}, metrics=rundirs.metrics(0.80, 1.0))
    worse = rundirs.record("bbbbbbbbbbbb", {"model.size": "m", "precision": "fp32"},
                           metrics=rundirs.metrics(0.79, 2.0))  # dominated by best: lower AUC, slower, same rest
    failed = rundirs.record("cccccccccccc", {"model.size": "l", "precision": "fp32"}, "failed", reason="oom: 9 GB")
    skipped = rundirs.record("dddddddddddd", {"model.size": "s", "precision": "fp16"}, "skipped",
                             reason="fp16 needs CUDA")
    return [best, worse, failed, skipped]


def _children(client, experiment_name):
    experiment = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("costbench.kind") == "sweep"]
    children = {r.data.tags["costbench.trial_id"]: r for r in runs if r.data.tags.get("costbench.kind") == "trial"}
    return parents, children


@pytest.mark.slow
def test_export_makes_one_run_per_trial_with_metrics_ranks_and_report_files_and_is_idempotent(tmp_path):
    MlflowClient = pytest.importorskip("mlflow", reason=NO_MLFLOW).MlflowClient

    run = rundirs.write(tmp_path / "run", _records())
    assert runner.invoke(app, ["report", str(run), "--format", "none"]).exit_code == 0  # report files to attach
    result = runner.invoke(app, ["export", "mlflow", str(run)])
    assert result.exit_code == 0, result.output
    assert "4 run(s) created, 0 updated" in result.output
    client = MlflowClient(f"sqlite:///{run / 'mlflow.db'}")
    parents, children = _children(client, "decide")  # the sweep's name in run.json
    assert len(parents) == 1 and sorted(children) == ["aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc", "dddddddddddd"]
    parent = parents[0]

    best, worse = children["aaaaaaaaaaaa"], children["bbbbbbbbbbbb"]
    assert best.data.metrics["auc"] == pytest.approx(0.80) and best.data.metrics["p99_ms_at_1"] == pytest.approx(1.0)
    assert worse.data.metrics["p99_ms_at_64"] == pytest.approx(16.0)
    assert best.data.params["model.size"] == "s" and best.data.params["data.rows"] == "1000"
    assert (best.data.tags["costbench.pareto_rank"], best.data.tags["costbench.pick"]) == ("1", "true")
    assert (worse.data.tags["costbench.pareto_rank"], worse.data.tags["costbench.pick"]) == ("2", "false")
    assert best.data.tags["costbench.version"] == "0.2.0"  # from the trial's environment file
    assert best.data.tags["costbench.env_id"] == "e0e0e0e0e0e0"
    assert best.data.tags["costbench.data_id"] == "d0d0d0d0d0d0"
    assert json.loads(best.data.tags["costbench.axes"]) == ["model.size", "precision"]
    assert best.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert best.info.status == "FINISHED"

    failed, skipped = children["cccccccccccc"], children["dddddddddddd"]
    assert failed.info.status == "FAILED" and failed.data.tags["costbench.reason"] == "oom: 9 GB"
    assert failed.data.tags["costbench.pareto_rank"] == "n/a" and failed.data.metrics == {}
    assert skipped.data.tags["costbench.status"] == "skipped" and skipped.info.status == "KILLED"

    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report.html", "report.md", "trials.csv", "pareto.csv", "run.json"} <= artifacts
    assert "mlflow.db" not in artifacts
    assert (run / "mlartifacts").is_dir(), "artifacts stay in the run directory"

    # again: the same runs updated, none added
    again = runner.invoke(app, ["export", "mlflow", str(run)])
    assert again.exit_code == 0 and "0 run(s) created, 4 updated" in again.output
    parents2, children2 = _children(client, "decide")
    assert [p.info.run_id for p in parents2] == [parent.info.run_id]
    assert {k: r.info.run_id for k, r in children2.items()} == {k: r.info.run_id for k, r in children.items()}
    assert len(client.get_metric_history(best.info.run_id, "auc")) == 1, "a re-export logs no metric twice"

    # the failed trial is retried and now ok: its run is updated, its metrics are readable
    retried = rundirs.record("cccccccccccc", {"model.size": "l", "precision": "fp32"},
                             metrics=rundirs.metrics(0.81, 3.0))
    retried["finished_at"] = "2026-12-01T11:00:00+00:00"
    with (run / "trials.jsonl").open("a") as handle:
        handle.write(json.dumps(retried) + "\n")
    third = runner.invoke(app, ["export", "mlflow", str(run)])
    assert third.exit_code == 0 and "0 run(s) created, 4 updated" in third.output
    _, children3 = _children(client, "decide")
    now = children3["cccccccccccc"]
    assert now.info.run_id == failed.info.run_id and now.info.status == "FINISHED"
    assert now.data.metrics["auc"] == pytest.approx(0.81) and now.data.tags["costbench.pareto_rank"] == "1"
    assert now.data.tags["costbench.reason"] == ""


@pytest.mark.slow
def test_an_explicit_tracking_uri_and_experiment_name_are_used(tmp_path, monkeypatch):
    MlflowClient = pytest.importorskip("mlflow", reason=NO_MLFLOW).MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow's own artifact root for a store it creates: ./mlruns
    run = rundirs.write(tmp_path / "run", _records()[:2])
    uri = f"sqlite:///{tmp_path / 'team.db'}"
    result = runner.invoke(app, ["export", "mlflow", str(run), "--tracking-uri", uri, "--experiment", "pricing"])
    assert result.exit_code == 0, result.output
    assert not (run / "mlflow.db").exists()
    _, children = _children(MlflowClient(uri), "pricing")
    assert sorted(children) == ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]
    assert (tmp_path / "mlruns").is_dir() and not (run / "mlartifacts").exists(), "the store decides, not us"


@pytest.mark.slow
def test_sweep_track_mlflow_logs_every_record_once_with_ranks(tmp_path, monkeypatch):
    MlflowClient = pytest.importorskip("mlflow", reason=NO_MLFLOW).MlflowClient

    import costbench.report.build
    from costbench.engine import TRIAL_FN_ENV
    from costbench.store import read_records
    from tests.fake_trials import write_sweep

    monkeypatch.setenv(TRIAL_FN_ENV, "tests.fake_trials:by_seed")
    built_again = []  # the tracker reuses the sweep's own report rather than building a second one
    real_build = costbench.report.build.build_report
    monkeypatch.setattr(costbench.report.build, "build_report",
                        lambda *a, **k: built_again.append(a) or real_build(*a, **k))
    sweep_file = write_sweep(tmp_path, [3, 5, 1000], objectives=["auc:max", "p99_ms:min"])  # 1000: skipped
    out = tmp_path / "run"
    args = ["sweep", str(sweep_file), "--out", str(out), "--workers", "1", "--track", "mlflow"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert built_again == []
    records, _ = read_records(out)
    _, children = _children(MlflowClient(f"sqlite:///{out / 'mlflow.db'}"), "fake")
    assert sorted(children) == sorted(r["id"] for r in records)
    by_seed = {r["config"]["seed"]: r["id"] for r in records}
    assert children[by_seed[5]].data.metrics["auc"] == pytest.approx(0.505)
    assert children[by_seed[5]].data.tags["costbench.pareto_rank"] == "1"  # seed 5: higher AUC, p99 5 vs 3
    assert children[by_seed[1000]].data.tags["costbench.status"] == "skipped"

    assert runner.invoke(app, args).exit_code == 0  # a resumed sweep with nothing to run: no new runs
    _, again = _children(MlflowClient(f"sqlite:///{out / 'mlflow.db'}"), "fake")
    assert {k: r.info.run_id for k, r in again.items()} == {k: r.info.run_id for k, r in children.items()}


def test_an_unknown_tracker_is_one_line_and_exit_2(tmp_path):
    from tests.fake_trials import write_sweep

    result = runner.invoke(app, ["sweep", str(write_sweep(tmp_path, [0])), "--out", str(tmp_path / "run"),
                                 "--track", "mlfow"])
    assert result.exit_code == 2 and "--track 'mlfow' is not one of mlflow (did you mean 'mlflow'?)" in result.output
