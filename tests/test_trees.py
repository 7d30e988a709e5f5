"""The tree families: ok records with every metric, honest skips, validated params, and the AUC they reach."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from costbench.cli import app
from costbench.families.trees_features import sequence_aggregates
from costbench.record import is_known_metric
from costbench.spec import load_sweep
from costbench.tree_presets import ACCEPTED, RESERVED
from costbench.trial import run_trial

TINY = """\
name: tiny-trees
data: {rows: 5000, sequence_length: 6}
serve: {batch_sizes: [1, 64], warmup: 2, min_calls: 662, min_seconds: 0, rounds: 1}
threads: 1
"""
FAMILIES = ["lightgbm", "xgboost", "catboost", "random_forest"]


def trial_for(tmp_path: Path, *overrides: str) -> dict:
    path = tmp_path / "s.yaml"
    path.write_text(TINY)
    sweep = load_sweep(path, list(overrides), cache_dir=str(tmp_path / "cache"))
    return sweep.trials[0].to_json()


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_each_tree_family_gives_an_ok_record_with_every_metric(tmp_path: Path, family: str) -> None:
    size = "xs" if family == "random_forest" else "s"
    record = run_trial(trial_for(tmp_path, f"model.family={family}", f"model.size={size}"))
    assert record["status"] == "ok", record["reason"]
    m = record["metrics"]
    for name in ("auc", "train_seconds", "train_cost_usd", "train_peak_mem_mb", "model_bytes", "params",
                 "serve_cost_per_million_usd"):
        assert m[name] is not None and m[name] > 0, name
    for batch in (1, 64):
        for name in ("p50_ms", "p99_ms", "throughput", "serve_cost_per_million_usd"):
            assert m[f"{name}@{batch}"] > 0, f"{name}@{batch}"
    assert all(is_known_metric(name) for name in m)
    assert 0.8 < m["auc"] < m["bayes_auc"] + 0.01  # 5k rows: well above chance, not above the best possible
    assert record["details"]["precision"]["runtime"] == family


def test_sequence_aggregates_count_what_the_session_viewed() -> None:
    items = np.array([[0, 0, 5, 7, 5], [1, 2, 3, 4, 6]])
    cats = np.array([[0, 0, 2, 2, 2], [1, 1, 3, 1, 2]])
    # length, distinct categories, top category count, distinct items, top item count
    assert sequence_aggregates(items, cats).tolist() == [[3, 1, 3, 2, 2], [5, 3, 3, 5, 1]]


@pytest.mark.parametrize("precision", ["int8", "bf16", "fp16"])
def test_low_precision_tree_trials_are_skipped_with_the_reason(tmp_path: Path, precision: str) -> None:
    record = run_trial(trial_for(tmp_path, "model.family=lightgbm", f"precision={precision}"))
    assert record["status"] == "skipped"
    assert f"fp32 only: it has no {precision} path" in record["reason"]


def test_lightgbm_on_cuda_is_skipped_because_pypi_has_no_cuda_build(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    record = run_trial(trial_for(tmp_path, "model.family=lightgbm", "device=cuda"))
    assert record["status"] == "skipped"
    assert "LightGBM's CUDA build is not on PyPI" in record["reason"]


def test_missing_package_gives_a_skipped_record_with_the_install_line(tmp_path: Path, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "catboost" else real(name, *a))
    record = run_trial(trial_for(tmp_path, "model.family=catboost"))
    assert record["status"] == "skipped"
    assert 'pip install "costbench[gbdt]"' in record["reason"]


def test_validate_warns_before_the_sweep_when_a_package_is_missing(tmp_path: Path, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "xgboost" else real(name, *a))
    (tmp_path / "s.yaml").write_text(TINY + "model: {family: xgboost}\n")
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "s.yaml")])
    assert result.exit_code == 0
    assert "xgboost package, which is not installed" in result.output
    assert 'pip install "costbench[gbdt]"' in result.output


def test_unknown_param_is_one_line_with_did_you_mean_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(TINY + "model: {family: lightgbm, params: {num_leafs: 15}}\n")
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "s.yaml")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "num_leafs is not a lightgbm hyperparameter (did you mean 'num_leaves'?)" in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("yaml", "says"), [
    ("{family: xgboost, params: {n_jobs: 4}}", "costbench sets this from threads"),
    ("{family: mlp, params: {num_leaves: 4}}", "applies to the tree families"),
    ("{family: catboost, hidden: 64}", "takes its own hyperparameters under model.params"),
])
def test_params_that_cannot_apply_are_refused(tmp_path: Path, yaml: str, says: str) -> None:
    (tmp_path / "s.yaml").write_text(TINY + f"model: {yaml}\n")
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "s.yaml")])
    assert result.exit_code == 2 and says in result.output, result.output


def test_accepted_names_are_the_installed_libraries_own() -> None:
    import catboost
    import lightgbm
    import xgboost
    from sklearn.ensemble import RandomForestClassifier

    ours = {"early_stopping_rounds"}  # costbench's patience, accepted by every boosting family
    lgbm_args = set(inspect.signature(lightgbm.LGBMClassifier.__init__).parameters)
    assert lgbm_args - set(RESERVED) - {"self", "kwargs"} <= set(ACCEPTED["lightgbm"])
    assert set(ACCEPTED["xgboost"]) - ours <= set(xgboost.XGBClassifier().get_params())
    assert set(ACCEPTED["catboost"]) <= set(inspect.signature(catboost.CatBoostClassifier.__init__).parameters)
    assert set(ACCEPTED["random_forest"]) <= set(inspect.signature(RandomForestClassifier.__init__).parameters)


@pytest.mark.slow
def test_lightgbm_s_reaches_bayes_auc_within_0_015_on_the_default_data(tmp_path: Path) -> None:
    """The done-criterion of the tree issue, on the default 200k-row synthetic data."""
    (tmp_path / "s.yaml").write_text("name: default-data\nserve: {batch_sizes: [1], warmup: 2, min_calls: 662, "
                                     "min_seconds: 0, rounds: 1}\nmodel: {family: lightgbm, size: s}\n")
    sweep = load_sweep(tmp_path / "s.yaml", [], cache_dir=str(tmp_path / "cache"))
    record = run_trial(sweep.trials[0].to_json())
    assert record["status"] == "ok", record["reason"]
    assert record["metrics"]["auc_gap_to_bayes"] < 0.015, record["metrics"]["auc"]
