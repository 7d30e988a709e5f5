"""The tree families (LightGBM, XGBoost, CatBoost, scikit-learn's random forest) behind the family seam.

Each library gets the same float32 feature matrix (``trees_features``) with its categorical columns
marked for the library's native handling, the size preset with ``model.params`` on top
(``tree_presets``), the trial's threads and seed, sample weights for ``class_weight: balanced``, and early
stopping on the validation split's AUC (``model.params.early_stopping_rounds``, default 50;
``train.patience`` counts network epochs; the forest has no rounds to stop). Serving (``serve.runtime``):
``eager`` is the library's own in-process predict on inputs staged beforehand, returning raw margins as
float32; ``onnxruntime`` is the model converted to ONNX by the library's maintained converter
(``onnx_graph``) and served by ONNX Runtime (``trees_onnx``); ``compile`` (torch.compile) does not apply.
Only fp32 exists for these libraries: any other precision is skipped, never substituted.
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import pickle
import tempfile
import time
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from costbench.data import PreparedData, Split
from costbench.errors import TrialSkipped
from costbench.families import trees_onnx
from costbench.families.base import Family, FitSummary, Fitted, ModelSize, Progress, Served
from costbench.families.trees_features import FeatureLayout, feature_layout, feature_matrix
from costbench.metrics import roc_auc
from costbench.spec import TrialConfig
from costbench.tree_presets import INSTALL_HINT, PACKAGES, resolve_tree_hparams

DEFAULT_PATIENCE = 50  # boosting rounds without a better val AUC before stopping
PROGRESS_EVERY = 50
GPU_TRAINING = {"xgboost": True, "catboost": True}
NO_GPU_REASON = {
    "lightgbm": "LightGBM's CUDA build is not on PyPI (the pip wheel trains on CPU only); run it on device cpu",
    "random_forest": "scikit-learn's random forest has no GPU training; run it on device cpu",
}


class Budget:
    """Progress every few rounds and the ``train.max_minutes`` stop, shared by the boosting callbacks."""

    def __init__(self, total: int, max_minutes: float | None, on_progress: Progress) -> None:
        self.total, self.on_progress = total, on_progress
        self.deadline = None if max_minutes is None else time.perf_counter() + 60 * max_minutes
        self.timed_out = False

    def after_round(self, done: int) -> bool:
        """True when training must stop now (the time budget is spent)."""
        if done % PROGRESS_EVERY == 0:
            self.on_progress(f"tree {done}/{self.total}")
        if self.deadline is not None and time.perf_counter() > self.deadline:
            self.timed_out = True
        return self.timed_out


class TreeFamily(Family):
    """What every tree library shares: the checks, the features, the fit bookkeeping, the serving wrapper."""

    package: str
    rounds_key = "n_estimators"

    def __init__(self, name: str) -> None:
        self.name = name
        self.package = PACKAGES[name]

    def check(self, cfg: TrialConfig, device: torch.device) -> None:
        if importlib.util.find_spec(self.package) is None:
            raise TrialSkipped(f"model family {self.name} needs the {self.package} package: {INSTALL_HINT}")
        if cfg.precision != "fp32":
            raise TrialSkipped(f"{self.name} trains and predicts in fp32 only: it has no {cfg.precision} path")
        if cfg.serve.runtime == "compile":
            raise TrialSkipped(f"serve.runtime compile is torch.compile, for PyTorch models; {self.name} serves "
                               "through its own in-process predict (serve.runtime: eager) or onnxruntime")
        if device.type == "cuda" and not GPU_TRAINING.get(self.name):
            raise TrialSkipped(f"device {device}: {NO_GPU_REASON[self.name]}")
        if cfg.serve.runtime == "onnxruntime" and (reason := trees_onnx.skip_reason(self.name, device)):
            raise TrialSkipped(reason)
        if cfg.compress.distill is not None:
            raise TrialSkipped(f"compress.distill trains a network student on a teacher's soft targets; {self.name} "
                               "is not implemented as a student (a tree family can be the teacher)")
        if cfg.compress.prune is not None:
            raise TrialSkipped(f"compress.prune removes hidden units of a network; {self.name} has none (its size "
                               "is model.size and model.params)")

    def fit(self, data: PreparedData, cfg: TrialConfig, device: torch.device, on_progress: Progress,
            soft_targets: Any = None) -> Fitted:
        hparams = resolve_tree_hparams(self.name, cfg.model.size, cfg.model.params)
        layout = feature_layout(data.schema)
        x_train, x_val = feature_matrix(data.train), feature_matrix(data.val)
        y_train, y_val = data.train.label.numpy(), data.val.label.numpy()
        weight = None if data.pos_weight is None else np.where(y_train > 0.5, data.pos_weight, 1.0)
        budget = Budget(int(hparams.get(self.rounds_key) or 0), cfg.train.max_minutes, on_progress)
        patience = int(hparams.pop("early_stopping_rounds", DEFAULT_PATIENCE))
        start = time.perf_counter()
        model, rounds, best = self.train(hparams, layout, (x_train, y_train, weight), (x_val, y_val),
                                         threads=torch.get_num_threads(), seed=cfg.seed, device=device,
                                         patience=patience, budget=budget)
        seconds = time.perf_counter() - start
        val_auc = roc_auc(y_val, self.margins(model, self.to_input(x_val, layout), torch.get_num_threads()))
        reason = ("time_budget" if budget.timed_out else "early_stopping" if rounds < budget.total
                  else "max_iterations")
        summary = FitSummary(best_val_auc=val_auc, samples_per_s=len(y_train) / seconds if seconds > 0 else None,
                             stopped_reason=reason, iterations_run=rounds,
                             details={"fit_seconds": seconds, "rounds_run": rounds, "best_round": best,
                                      "patience": patience, "features": layout.names,
                                      "categorical_features": [layout.names[i] for i in layout.categorical]})
        return Fitted(model=model, hparams={"family": self.name, "size": cfg.model.size, **hparams},
                      params=self.node_count(model), summary=summary)

    def prepare(self, fitted: Fitted, data: PreparedData, cfg: TrialConfig, device: torch.device) -> Served:
        layout, threads, model = feature_layout(data.schema), torch.get_num_threads(), fitted.model
        if cfg.serve.runtime == "onnxruntime":
            def native(split: Split) -> np.ndarray:
                return self.margins(model, self.to_input(feature_matrix(split), layout), threads)

            return trees_onnx.serve_onnx(self.name, self.onnx_graph, native, fitted, data, device)

        def stage(split: Split, rows: Any) -> tuple[Any, ...]:
            return (self.to_input(feature_matrix(split, rows), layout),)

        def predict(inputs: Any) -> np.ndarray:
            return self.margins(model, inputs, threads)

        model_bytes = self.serialized_bytes(model)
        size = ModelSize(params=fitted.params, param_bytes=self.param_bytes(model), model_bytes=model_bytes)
        info = {"runtime": self.name, "dtype": "float32", "scheme": None, "compiled": False,
                "threads": threads, "input": self.input_kind, "model_format": self.model_format}
        return Served(predict=predict, stage=stage, size=size, info=info)

    # --- what each library does its own way -----------------------------------------------------------
    input_kind = "numpy float32"
    model_format = ""

    def to_input(self, matrix: np.ndarray, layout: FeatureLayout) -> Any:
        """The library's predict input for a feature matrix (built in ``stage``, outside the timing)."""
        return matrix

    @abstractmethod
    def train(self, hparams: dict[str, Any], layout: FeatureLayout, train: tuple[Any, ...], val: tuple[Any, ...],
              *, threads: int, seed: int, device: torch.device, patience: int, budget: Budget,
              ) -> tuple[Any, int, int | None]:
        """(model cut to its best round, rounds run, best round or None when nothing stops early)."""

    @abstractmethod
    def margins(self, model: Any, inputs: Any, threads: int) -> np.ndarray:
        """float32 raw scores (log-odds) for staged inputs."""

    @abstractmethod
    def node_count(self, model: Any) -> int:
        """Split and leaf nodes over all trees: the params-equivalent size."""

    @abstractmethod
    def serialized_bytes(self, model: Any) -> int:
        """Bytes of the model in the library's own saved format."""

    def param_bytes(self, model: Any) -> int | None:
        """In-memory bytes of the model, where the library exposes an honest figure (else None = n/a)."""
        return None

    @abstractmethod
    def onnx_graph(self, model: Any, n_features: int) -> bytes:
        """The model as a serialized ONNX graph (input ``features``: float32 [batch, n_features]) written by
        the library's maintained converter; the converter's own exception when it cannot convert it."""


class LightGBMFamily(TreeFamily):
    model_format = "LightGBM text model"

    def train(self, hparams, layout, train, val, *, threads, seed, device, patience, budget):
        import lightgbm as lgb

        def callback(env: Any) -> None:
            if budget.after_round(env.iteration + 1):
                raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

        x, y, w = train
        model = lgb.LGBMClassifier(**hparams, n_jobs=threads, random_state=seed, verbose=-1)
        evals = ({"eval_X": (val[0],), "eval_y": (val[1],)} if "eval_X" in inspect.signature(model.fit).parameters
                 else {"eval_set": [val]})  # lightgbm >= 4.6 deprecates eval_set
        model.fit(x, y, sample_weight=w, **evals, eval_metric="auc", categorical_feature=layout.categorical,
                  callbacks=[lgb.early_stopping(patience, first_metric_only=True, verbose=False), callback])
        booster = model.booster_
        aucs = model.evals_result_["valid_0"]["auc"]
        rounds = len(aucs)
        # the first round of best val AUC, as early stopping keeps; the time-budget callback's stop sets
        # best_iteration_ to the last round, which would keep the rounds after the best
        best_round = int(np.argmax(aucs)) + 1
        best = best_round if best_round < rounds else None
        cut = lgb.Booster(model_str=booster.model_to_string(num_iteration=best or -1))
        return cut, rounds, best

    def margins(self, model, inputs, threads):
        return model.predict(inputs, raw_score=True, num_threads=threads).astype(np.float32)

    def node_count(self, model):
        return sum(2 * tree["num_leaves"] - 1 for tree in model.dump_model()["tree_info"])

    def serialized_bytes(self, model):
        return len(model.model_to_string().encode())

    def onnx_graph(self, model, n_features):
        from onnxmltools.convert import convert_lightgbm

        return convert_lightgbm(model, initial_types=_float_input(n_features), zipmap=False).SerializeToString()


class XGBoostFamily(TreeFamily):
    model_format = "XGBoost UBJSON"

    def train(self, hparams, layout, train, val, *, threads, seed, device, patience, budget):
        import xgboost as xgb

        class Callback(xgb.callback.TrainingCallback):
            def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                return budget.after_round(epoch + 1)

        types = ["c" if i in layout.categorical else "q" for i in range(len(layout.names))]
        x, y, w = train
        model = xgb.XGBClassifier(**{"tree_method": "hist", **hparams}, n_jobs=threads, random_state=seed,
                                  device="cuda" if device.type == "cuda" else "cpu", enable_categorical=True,
                                  feature_types=types, eval_metric="auc", early_stopping_rounds=patience,
                                  callbacks=[Callback()])
        model.fit(x, y, sample_weight=w, eval_set=[val], verbose=False)
        booster = model.get_booster()
        rounds = booster.num_boosted_rounds()
        best = model.best_iteration + 1 if rounds > model.best_iteration + 1 else None
        cut = booster[: best] if best else booster
        cut.set_param({"nthread": threads})
        return cut, rounds, best

    def margins(self, model, inputs, threads):
        return np.asarray(model.inplace_predict(inputs, predict_type="margin"), dtype=np.float32)

    def node_count(self, model):
        return sum(len(tree.strip().splitlines()) for tree in model.get_dump())

    def serialized_bytes(self, model):
        return len(model.save_raw(raw_format="ubj"))

    def onnx_graph(self, model, n_features):
        from onnxmltools.convert import convert_xgboost

        return convert_xgboost(model, initial_types=_float_input(n_features)).SerializeToString()


class CatBoostFamily(TreeFamily):
    rounds_key = "iterations"
    input_kind = "catboost.Pool"
    model_format = "CatBoost .cbm"

    def to_input(self, matrix, layout, label=None, weight=None):
        import catboost
        import pandas as pd

        frame = pd.DataFrame(matrix, columns=layout.names)
        for i in layout.categorical:
            frame[layout.names[i]] = matrix[:, i].astype(np.int64)
        # integer class labels: a model trained on float labels cannot be exported to ONNX by CatBoost
        labels = None if label is None else np.asarray(label).astype(np.int64)
        return catboost.Pool(frame, label=labels, weight=weight, cat_features=layout.categorical)

    def train(self, hparams, layout, train, val, *, threads, seed, device, patience, budget):
        import catboost

        class Callback:
            def after_iteration(self, info: Any) -> bool:  # False stops training
                return not budget.after_round(info.iteration)

        x, y, w = train
        pool, val_pool = self.to_input(x, layout, y, w), self.to_input(val[0], layout, val[1])
        gpu = device.type == "cuda"
        model = catboost.CatBoostClassifier(
            **hparams, thread_count=threads, random_seed=seed, task_type="GPU" if gpu else "CPU",
            devices=str(device.index or 0) if gpu else None, eval_metric="AUC", od_type="Iter", od_wait=patience,
            use_best_model=True, allow_writing_files=False, verbose=False)
        model.fit(pool, eval_set=val_pool, callbacks=None if gpu else [Callback()])  # GPU mode takes no callbacks
        rounds = len(model.get_evals_result().get("validation", {}).get("AUC", [])) or model.tree_count_
        best = model.tree_count_ if rounds > model.tree_count_ else None  # use_best_model cut it there
        return model, rounds, best

    def margins(self, model, inputs, threads):
        return model.predict(inputs, prediction_type="RawFormulaVal", thread_count=threads).astype(np.float32)

    def node_count(self, model):
        return int(sum(2 * leaves - 1 for leaves in model.get_tree_leaf_counts()))

    def serialized_bytes(self, model):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.cbm"
            model.save_model(str(path), format="cbm")
            return path.stat().st_size

    def onnx_graph(self, model, n_features):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            model.save_model(str(path), format="onnx")
            return path.read_bytes()


class RandomForestFamily(TreeFamily):
    model_format = "pickle (scikit-learn's own persistence)"
    clip = trees_onnx.CLIP  # probabilities of exactly 0 or 1 (pure leaves) have no finite logit; as under ORT

    def train(self, hparams, layout, train, val, *, threads, seed, device, patience, budget):
        from sklearn.ensemble import RandomForestClassifier

        x, y, w = train
        model = RandomForestClassifier(**hparams, n_jobs=threads, random_state=seed)
        model.fit(x, y, sample_weight=w)
        return model, len(model.estimators_), None

    def margins(self, model, inputs, threads):
        p = np.clip(model.predict_proba(inputs)[:, 1], self.clip, 1 - self.clip)
        return (np.log(p) - np.log1p(-p)).astype(np.float32)

    def node_count(self, model):
        return int(sum(tree.tree_.node_count for tree in model.estimators_))

    def serialized_bytes(self, model):
        buffer = io.BytesIO()
        pickle.dump(model, buffer, protocol=pickle.HIGHEST_PROTOCOL)
        return buffer.tell()

    def param_bytes(self, model):
        """The node and value arrays every tree holds (what prediction walks)."""
        total = 0
        for tree in model.estimators_:
            state = tree.tree_.__getstate__()
            total += state["nodes"].nbytes + state["values"].nbytes
        return total

    def onnx_graph(self, model, n_features):
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        inputs = [(trees_onnx.INPUT_NAME, FloatTensorType([None, n_features]))]
        return convert_sklearn(model, initial_types=inputs, options={id(model): {"zipmap": False}}).SerializeToString()


def _float_input(n_features: int) -> list[tuple[str, Any]]:
    """onnxmltools' input declaration: float32 [batch, n_features] named ``features``."""
    from onnxmltools.convert.common.data_types import FloatTensorType

    return [(trees_onnx.INPUT_NAME, FloatTensorType([None, n_features]))]


FAMILIES: dict[str, Callable[[str], TreeFamily]] = {
    "lightgbm": LightGBMFamily, "xgboost": XGBoostFamily, "catboost": CatBoostFamily,
    "random_forest": RandomForestFamily,
}


def family(name: str) -> TreeFamily:
    return FAMILIES[name](name)
