"""Training and evaluation: every family, NaN detection, reproducibility and stopping on tiny in-memory
data; and, on the default synthetic shoppers, the check that the models, the loop and the generator fit
together (a small mlp comes within 0.02 of the Bayes-optimal AUC, a linear model stays clearly below)."""

from __future__ import annotations

import contextlib
import itertools
import math

import pytest
import torch

from costbench.data import PreparedData, Schema, Split
from costbench.data.load import load_data
from costbench.evaluate import evaluate, predict_proba
from costbench.model_presets import resolve_hparams
from costbench.models import build_model
from costbench.spec import FAMILIES, DataConfig, EvalConfig, ModelConfig, TrainConfig
from costbench.train import NonFiniteLoss, lr_factor, seed_everything, train_model, validation_auc

CPU = torch.device("cpu")
SCHEMA = Schema(numeric_names=["a", "b", "c", "d"], categorical_names=["device", "source"], cardinalities=[5, 3],
                sequence_length=6, n_items=50, n_item_categories=8)
QUALITY_KEYS = {"auc", "pr_auc", "logloss", "brier", "accuracy", "precision", "recall", "f1", "threshold",
                "capture_at_top", "lift_at_top"}


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: the same float summation order (so the same AUC) on every machine, and on a busy
    2-core box several times faster than two threads fighting over small matrices."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _split(n: int, g: torch.Generator) -> Split:
    numeric = torch.randn(n, 4, generator=g)
    categorical = torch.stack([torch.randint(0, 5, (n,), generator=g), torch.randint(0, 3, (n,), generator=g)], 1)
    items = torch.randint(0, 50, (n, 6), generator=g)
    item_categories = torch.where(items > 0, items % 7 + 1, 0)
    # an interaction, a category effect and "viewed category 3 at least twice": learnable, not linear
    logit = (numeric[:, 0] * numeric[:, 1] + 2.0 * (categorical[:, 0] == 2) - 1.0
             + 1.5 * ((item_categories == 3).sum(1) >= 2))
    prob = torch.sigmoid(logit)
    return Split(numeric, categorical, items, item_categories, torch.bernoulli(prob, generator=g), prob)


def tiny_data(rows: int = 3000, pos_weight: float | None = None) -> PreparedData:
    g = torch.Generator().manual_seed(0)
    return PreparedData(SCHEMA, _split(rows, g), _split(rows // 4, g), _split(rows // 4, g), pos_weight=pos_weight)


def _train(family: str = "mlp", data: PreparedData | None = None, seed: int = 0, autocast=contextlib.nullcontext,
           grad_scaler=None, size: str = "xs", **train):
    seed_everything(seed)
    data = data or tiny_data()
    model = build_model(resolve_hparams(ModelConfig(family=family, size=size)), data.schema)
    cfg = TrainConfig(**{"epochs": 2, "batch_size": 256, "lr": 0.01, **train})
    result = train_model(model, data, cfg, device=CPU, autocast=autocast, grad_scaler=grad_scaler)
    return model, data, result


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_trains_and_evaluates(family):
    model, data, result = _train(family)
    quality = evaluate(model, data, EvalConfig(), CPU)
    assert set(quality) == QUALITY_KEYS
    assert all(math.isfinite(v) for v in quality.values())
    assert quality["auc"] > 0.6, quality
    assert result.epochs_run == 2 and result.stopped_reason == "max_epochs"
    assert result.samples_per_s > 0 and len(result.history) == 2


def test_tabular_family_trains_on_data_without_sequences():
    data = tiny_data()
    no_seq = Schema(SCHEMA.numeric_names, SCHEMA.categorical_names, SCHEMA.cardinalities, 0, 1, 1)
    for split in (data.train, data.val, data.test):
        split.items = split.item_categories = split.items[:, :0]
    model, _, _ = _train("dcn", data=PreparedData(no_seq, data.train, data.val, data.test))
    assert evaluate(model, data, EvalConfig(), CPU)["auc"] > 0.6


def test_model_ends_with_its_best_validation_weights():
    model, data, result = _train(epochs=4, lr=0.05)
    assert validation_auc(model, data, contextlib.nullcontext, CPU) == result.best_val_auc
    assert result.best_val_auc == max(h["val_auc"] for h in result.history)
    assert not model.training


def test_same_seed_same_auc_other_seed_other_auc():
    first = evaluate(_train(seed=3)[0], tiny_data(), EvalConfig(), CPU)["auc"]
    again = evaluate(_train(seed=3)[0], tiny_data(), EvalConfig(), CPU)["auc"]
    other = evaluate(_train(seed=4)[0], tiny_data(), EvalConfig(), CPU)["auc"]
    assert first == again
    assert first != other


@pytest.mark.parametrize("bad_row_batch", [0, 20])
def test_non_finite_loss_names_epoch_and_step(bad_row_batch):
    data, batch = tiny_data(), 64
    seed_everything(0)
    model = build_model(resolve_hparams(ModelConfig(family="mlp", size="xs")), data.schema)
    state = torch.get_rng_state()
    order = torch.randperm(len(data.train))  # the order train_model will draw first
    torch.set_rng_state(state)
    bad = int(order[bad_row_batch * batch])
    data.train.numeric[bad, 0] = math.inf
    with pytest.raises(NonFiniteLoss, match=f"epoch 1, step {bad_row_batch + 1};") as caught:
        train_model(model, data, TrainConfig(epochs=2, batch_size=batch), device=CPU,
                    autocast=contextlib.nullcontext, grad_scaler=None)
    assert (caught.value.epoch, caught.value.step) == (1, bad_row_batch + 1)


def test_no_improvement_stops_early():
    _, _, result = _train(epochs=5, lr=1e-12, patience=1)  # too small to move float32 weights
    assert result.stopped_reason == "early_stopping"
    assert (result.epochs_run, result.best_epoch) == (2, 1)


def test_time_budget_stops_after_one_step():
    _, _, result = _train(epochs=5, max_minutes=1e-9)
    assert result.stopped_reason == "time_budget"
    assert result.epochs_run == 1 and result.history[0]["val_auc"] == result.best_val_auc


def test_warmup_then_cosine_schedule():
    cfg = TrainConfig(schedule="cosine", warmup_fraction=0.1)
    factors = [lr_factor(step, 100, cfg) for step in range(100)]
    assert factors[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert factors[10] == 1.0 and factors[-1] < 0.001
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))
    _, _, result = _train(schedule="cosine", warmup_fraction=0.2)
    assert result.history[-1]["lr"] < 1e-4


@pytest.mark.parametrize(("optimizer", "lr"), [("adam", 0.01), ("sgd", 0.3)])
def test_other_optimizers_learn(optimizer, lr):
    model, data, _ = _train(optimizer=optimizer, lr=lr, epochs=6)  # small embeddings: SGD needs a few more
    assert evaluate(model, data, EvalConfig(), CPU)["auc"] > 0.65


def test_balanced_class_weight_raises_predicted_probabilities():
    plain, data, _ = _train("logreg", lr=0.05, epochs=3)
    weighted, _, _ = _train("logreg", data=tiny_data(pos_weight=8.0), lr=0.05, epochs=3)
    mean = [predict_proba(m, data.val, 512, CPU).mean() for m in (plain, weighted)]
    assert mean[1] > mean[0] + 0.1


def test_autocast_and_grad_scaler_plug_in():
    calls = []

    @contextlib.contextmanager
    def bf16():
        calls.append(1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield

    model, data, _ = _train(autocast=bf16, grad_scaler=torch.amp.GradScaler("cpu"), grad_clip=1.0)
    assert len(calls) > 2 * math.ceil(3000 / 256)  # every training step and the validation passes
    assert evaluate(model, data, EvalConfig(), CPU)["auc"] > 0.65


def test_mlp_nears_bayes_auc_while_logreg_stays_below():
    """On the default data config itself (200,000 rows): with 50,000 rows the mlp's gap is about 0.036,
    because the generator's interactions need more rows than that to be learnt, not more capacity."""
    data = load_data(DataConfig(), None)
    mlp = _train("mlp", data, size="s", epochs=10, batch_size=1024, lr=0.003, patience=3)[0]
    logreg = _train("logreg", data, size="s", epochs=3, batch_size=1024, lr=0.02)[0]
    bayes = data.bayes_auc
    mlp_auc, logreg_auc = (evaluate(m, data, EvalConfig(), CPU)["auc"] for m in (mlp, logreg))
    numbers = f"bayes {bayes:.4f}, mlp s {mlp_auc:.4f} (gap {bayes - mlp_auc:.4f}), logreg s {logreg_auc:.4f}"
    assert bayes - mlp_auc <= 0.02, numbers
    assert bayes - logreg_auc > 0.03, numbers
