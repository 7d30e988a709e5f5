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
from costbench.tree_presets import ACCEPTED, PACKAGES, RESERVED
from costbench.trial import run_trial

TINY = """\
name: tiny-trees
data: {rows: 5000, sequence_length: 6}
serve: {batch_sizes: [1, 64], warmup: 2, min_calls: 662, min_seconds: 0, rounds: 1}
threads: 1
"""
FAMILIES = ["lightgbm", "xgboost", "catboost", "random_forest"]
EXTRA = {**dict.fromkeys(PACKAGES.values(), "gbdt"), **dict.fromkeys(("onnxruntime", "onnx", "onnxmltools", "skl2onnx"),
                                                                    "serve")}


def requires(*modules: str) -> None:
    """Skip this test, saying which extra to install, when one of ``modules`` is not installed."""
    for module in modules:
        pytest.importorskip(module, reason=f'the [{EXTRA[module]}] extra is not installed: pip install '
                                           f'"costbench[{EXTRA[module]}]"; CI installs it')


def trial_for(tmp_path: Path, *overrides: str) -> dict:
    path = tmp_path / "s.yaml"
    path.write_text(TINY)
    sweep = load_sweep(path, list(overrides), cache_dir=str(tmp_path / "cache"))
    return sweep.trials[0].to_json()


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_each_tree_family_gives_an_ok_record_with_every_metric(tmp_path: Path, family: str) -> None:
    requires(PACKAGES[family])
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
    requires("lightgbm")
    record = run_trial(trial_for(tmp_path, "model.family=lightgbm", f"precision={precision}"))
    assert record["status"] == "skipped"
    assert f"fp32 only: it has no {precision} path" in record["reason"]


def test_lightgbm_on_cuda_is_skipped_because_pypi_has_no_cuda_build(tmp_path: Path, monkeypatch) -> None:
    requires("lightgbm")
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
    requires(*PACKAGES.values())
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
    requires("lightgbm")
    (tmp_path / "s.yaml").write_text("name: default-data\nserve: {batch_sizes: [1], warmup: 2, min_calls: 662, "
                                     "min_seconds: 0, rounds: 1}\nmodel: {family: lightgbm, size: s}\n")
    sweep = load_sweep(tmp_path / "s.yaml", [], cache_dir=str(tmp_path / "cache"))
    record = run_trial(sweep.trials[0].to_json())
    assert record["status"] == "ok", record["reason"]
    assert record["metrics"]["auc_gap_to_bayes"] < 0.015, record["metrics"]["auc"]


# ------------------------------------------------------------------------- serve.runtime: onnxruntime

@pytest.fixture(scope="module")
def tree_data():
    from costbench.data.load import load_data
    from costbench.spec import DataConfig

    return load_data(DataConfig(rows=5000, sequence_length=6), None)


def _fit(family: str, data, **cfg):
    from costbench.families import get_family
    from costbench.spec import ModelConfig, TrialConfig

    size = "xs" if family == "random_forest" else "s"
    cfg = TrialConfig(model=ModelConfig(family=family, size=size), threads=1, **cfg)
    return get_family(family), cfg, get_family(family).fit(data, cfg, torch.device("cpu"), lambda _p: None)


@pytest.mark.parametrize("family", ["lightgbm", "xgboost", "random_forest"])
def test_onnxruntime_serves_tree_families_with_the_native_auc(tree_data, family: str) -> None:
    requires(PACKAGES[family], "onnxruntime", "onnx", "skl2onnx" if family == "random_forest" else "onnxmltools")
    from costbench.evaluate import evaluate
    from costbench.spec import ServeConfig

    backend, cfg, fitted = _fit(family, tree_data, serve=ServeConfig(runtime="onnxruntime"))
    cpu = torch.device("cpu")
    served = backend.prepare(fitted, tree_data, cfg, cpu)
    native = backend.prepare(fitted, tree_data, cfg.model_copy(update={"serve": ServeConfig()}), cpu)
    assert served.info["runtime"] == "onnxruntime" and served.info["providers"] == ["CPUExecutionProvider"]
    assert served.info["intra_op_threads"] == 1 and served.info["converter"].split()[0] in ("onnxmltools", "skl2onnx")
    got = evaluate(served.predict, tree_data, cfg.eval, cpu, stage=served.stage)["auc"]
    want = evaluate(native.predict, tree_data, cfg.eval, cpu, stage=native.stage)["auc"]
    assert want > 0.75 and abs(got - want) < 1e-4, (got, want)
    one = served.predict(*served.stage(tree_data.test, slice(0, 1)))
    assert one.dtype == np.float32 and one.shape == (1,)
    assert served.size.model_bytes > 1000 and served.prepare_seconds > 0


def test_a_graph_that_disagrees_with_native_predict_is_skipped_not_served(tree_data) -> None:
    requires("lightgbm", "onnxruntime", "onnx", "onnxmltools")
    from costbench.errors import TrialSkipped
    from costbench.families import trees_onnx

    backend, _cfg, fitted = _fit("lightgbm", tree_data)
    layout_native = backend.prepare(fitted, tree_data, _cfg, torch.device("cpu"))

    def shifted(split):  # what a converter that silently dropped part of the model would be compared with
        return layout_native.predict(*layout_native.stage(split, slice(None))) + 0.5

    with pytest.raises(TrialSkipped, match=r"disagrees with lightgbm's own predict \(largest probability difference"):
        trees_onnx.serve_onnx("lightgbm", backend.onnx_graph, shifted, fitted, tree_data, torch.device("cpu"))


def test_catboost_with_categoricals_is_a_skip_with_the_converters_reason(tmp_path: Path) -> None:
    requires("catboost", "onnxruntime", "onnx")
    record = run_trial(trial_for(tmp_path, "model.family=catboost", "model.size=xs", "serve.runtime=onnxruntime"))
    assert record["status"] == "skipped"
    assert "the ONNX converter of catboost (catboost) refused this model: CatBoostError" in record["reason"]
    assert "does yet not support categorical features" in record["reason"]


def test_catboost_on_numeric_columns_serves_through_onnxruntime(tmp_path: Path) -> None:
    requires("catboost", "onnxruntime", "onnx")
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 4))
    pd.DataFrame({**{f"x{i}": x[:, i] for i in range(4)},
                  "bought": (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(size=3000) > 0.5).astype(int)}
                 ).to_csv(tmp_path / "t.csv", index=False)
    overrides = ["data.source=csv", f"data.path={tmp_path / 't.csv'}", "data.label=bought", "data.positive=1"]
    records = {rt: run_trial(trial_for(tmp_path, "model.family=catboost", "model.size=xs", f"serve.runtime={rt}",
                                       *overrides)) for rt in ("eager", "onnxruntime")}
    assert all(r["status"] == "ok" for r in records.values()), [r["reason"] for r in records.values()]
    auc = {rt: r["metrics"]["auc"] for rt, r in records.items()}
    assert abs(auc["eager"] - auc["onnxruntime"]) < 1e-4, auc
    assert records["onnxruntime"]["details"]["precision"]["model_format"].startswith("ONNX")


@pytest.mark.parametrize(("overrides", "says"), [
    (["serve.runtime=compile"], "serve.runtime compile is torch.compile, for PyTorch models"),
    (["serve.runtime=onnxruntime", "model.family=xgboost", "device=cuda"], "have CPU kernels only"),
])
def test_runtimes_trees_cannot_use_are_skipped_with_the_reason(tmp_path: Path, monkeypatch, overrides, says) -> None:
    requires("lightgbm", "xgboost", "onnxruntime", "onnx", "onnxmltools")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    record = run_trial(trial_for(tmp_path, "model.family=lightgbm", *overrides))
    assert record["status"] == "skipped" and says in record["reason"], record["reason"]


def test_missing_converter_gives_a_skip_with_the_install_line(tmp_path: Path, monkeypatch) -> None:
    real = importlib.util.find_spec
    requires("sklearn", "onnxruntime", "onnx")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "skl2onnx" else real(name, *a))
    record = run_trial(trial_for(tmp_path, "model.family=random_forest", "serve.runtime=onnxruntime"))
    assert record["status"] == "skipped"
    assert record["reason"] == ('serve.runtime onnxruntime for random_forest needs skl2onnx: '
                                'pip install "costbench[serve]"')


def test_lightgbm_stopped_by_the_time_budget_keeps_its_best_validation_round() -> None:
    """The budget's stop must not keep the rounds after the best validation AUC (early stopping's rule)."""
    pytest.importorskip("lightgbm", reason='needs LightGBM: pip install "costbench[gbdt]"')
    import numpy as np

    from costbench.families.trees import LightGBMFamily
    from costbench.families.trees_features import FeatureLayout
    from costbench.metrics import roc_auc

    class StopAt:  # the time budget, spent after `rounds` rounds
        def __init__(self, rounds: int) -> None:
            self.rounds = rounds

        def after_round(self, done: int) -> bool:
            return done >= self.rounds

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1200, 5)).astype(np.float32)
    y = (x[:, 0] + rng.normal(scale=2.0, size=1200) > 0).astype(np.float32)  # noisy: big trees overfit fast
    layout = FeatureLayout(names=[f"f{i}" for i in range(5)], categorical=[], cardinalities=[])
    train, val = (x[:800], y[:800], None), (x[800:], y[800:])
    hparams = {"n_estimators": 500, "num_leaves": 63, "learning_rate": 0.3, "min_child_samples": 2}
    model, rounds, best = LightGBMFamily("lightgbm").train(hparams, layout, train, val, threads=1, seed=0,
                                                 device=torch.device("cpu"), patience=1000, budget=StopAt(120))
    assert rounds >= 100 and best is not None and best < rounds  # stopped by the budget; it peaked earlier
    served_auc = roc_auc(val[1], model.predict(val[0], raw_score=True))
    every_round = [roc_auc(val[1], model.predict(val[0], raw_score=True, num_iteration=k))
                   for k in range(1, model.num_trees() + 1)]
    assert model.num_trees() == best and served_auc == pytest.approx(max(every_round))
