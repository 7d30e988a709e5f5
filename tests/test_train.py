"""Training and evaluation: every family, NaN detection, reproducibility and stopping on tiny in-memory
data; and, on the default synthetic shoppers, the check that the models, the loop and the generator fit
together (a small mlp comes within 0.02 of the Bayes-optimal AUC, a linear model stays clearly below)."""

from __future__ import annotations

import contextlib
import itertools
import math

import pytest
import torch

from costbench import metrics
from costbench.budget import resolve_budget
from costbench.data import PreparedData, Schema, Split
from costbench.data.load import load_data
from costbench.evaluate import evaluate, predict_proba
from costbench.model_presets import PRESETS, resolve_hparams
from costbench.models import build_model, set_output_bias
from costbench.spec import DataConfig, EvalConfig, ModelConfig, TrainConfig
from costbench.train import NonFiniteLoss, lr_factor, seed_everything, train_model, validation_auc

FAMILIES = tuple(PRESETS)  # the network families; the tree families are tested in test_trees.py
CPU = torch.device("cpu")
SCHEMA = Schema(numeric_names=["a", "b", "c", "d"], categorical_names=["device", "source"], cardinalities=[5, 3],
                sequence_length=6, n_items=50, n_item_categories=8)
QUALITY_KEYS = {"auc", "pr_auc", "logloss", "brier", "accuracy", "precision", "recall", "f1", "threshold",
                "capture_at_top", "lift_at_top", "auc_ci_low", "auc_ci_high", "capture_at_top_ci_low",
                "capture_at_top_ci_high"}


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
           grad_scaler=None, size: str = "xs", num_embedding: str = "auto", **train):
    seed_everything(seed)
    data = data or tiny_data()
    model = build_model(resolve_hparams(ModelConfig(family=family, size=size, num_embedding=num_embedding)),
                        data.schema)
    cfg = TrainConfig(**{"epochs": 2, "batch_size": 256, "lr": 0.01, "patience": None, **train})
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
    data.train.numeric[bad, 0] = math.nan  # inf would be clamped by the piecewise numeric embedding
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
    model, data, _ = _train(optimizer=optimizer, lr=lr, epochs=6, num_embedding="none")  # the optimizers, alone
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


def test_output_bias_starts_at_the_training_log_odds():
    data = tiny_data()
    p = float(data.train.label.mean())
    for family in ("logreg", "mlp", "dcn", "gru", "transformer"):
        model, _, result = _train(family, data, epochs=1, lr=1e-12)  # too small a step to move the bias
        assert result.output_bias == pytest.approx(math.log(p / (1 - p)), abs=1e-6)
        assert float(model.out.bias) == pytest.approx(result.output_bias, abs=1e-4), family
    logreg = build_model(resolve_hparams(ModelConfig(family="logreg", size="xs")), data.schema)
    set_output_bias(logreg, -1.5)  # zero weights: every row starts at the base rate itself
    assert torch.allclose(logreg(*data.val.inputs()), torch.full((len(data.val),), -1.5))
    weighted = _train("mlp", tiny_data(pos_weight=3.0), epochs=1, lr=1e-12)[2]
    assert weighted.output_bias == pytest.approx(math.log(3.0 * p / (1 - p)), abs=1e-6)


def test_selection_never_reads_test_labels():
    """Early stopping, the best state and the threshold come from validation: scrambling the test labels
    changes the test AUC and nothing else."""
    data = tiny_data()
    scrambled = PreparedData(data.schema, data.train, data.val,
                             Split(*data.test.inputs(), label=1 - data.test.label), pos_weight=None)
    a_model, _, a = _train("mlp", data, epochs=None, batch_size=None, lr=None, patience=3)
    b_model, _, b = _train("mlp", scrambled, epochs=None, batch_size=None, lr=None, patience=3)
    assert (a.best_step, a.steps_run, a.best_val_auc) == (b.best_step, b.steps_run, b.best_val_auc)
    assert a.history == [{**h, "seconds": a.history[i]["seconds"]} for i, h in enumerate(b.history)]
    qa, qb = evaluate(a_model, data, EvalConfig(), CPU), evaluate(b_model, scrambled, EvalConfig(), CPU)
    assert qa["threshold"] == qb["threshold"] and qa["auc"] == pytest.approx(1 - qb["auc"])


@pytest.mark.parametrize(("rows", "batch", "lr", "epochs"), [
    (1_000, 256, 0.002, 500), (100_000, 512, 0.002 * 2 ** 0.5, 100), (10_000_000, 4096, 0.003, 41)])
def test_budget_is_sized_to_the_rows(rows, batch, lr, epochs):
    budget = resolve_budget(rows, rows // 7, TrainConfig())
    assert (budget.batch_size, budget.max_epochs) == (batch, epochs)
    assert budget.lr == pytest.approx(lr)
    assert budget.max_epochs * budget.steps_per_epoch >= TrainConfig().min_steps
    assert 1 <= budget.val_every <= budget.steps_per_epoch and budget.patience == 16
    capped = resolve_budget(rows, rows // 7, TrainConfig(epochs=2, batch_size=64, lr=0.01))
    assert (capped.max_epochs, capped.batch_size, capped.lr, capped.automatic) == (2, 64, 0.01, ("val_every",))


def test_the_resolved_budget_is_in_the_result():
    _, _, result = _train(epochs=None, batch_size=None, lr=None, patience=2)
    assert (result.batch_size, result.lr, result.steps_per_epoch) == (256, 0.002, math.ceil(3000 / 256))
    assert result.automatic == ["batch_size", "lr", "epochs", "val_every"]
    assert result.stopped_reason == "early_stopping" and result.steps_run >= result.best_step > 0
    assert [h["step"] for h in result.history] == [result.val_every * (i + 1) for i in range(len(result.history))]


def test_logreg_size_is_its_bins_and_other_keys_are_refused():
    schema = tiny_data().schema
    sizes = {size: resolve_hparams(ModelConfig(family="logreg", size=size))["bins"] for size in ("xs", "s", "m")}
    assert sizes == {"xs": 0, "s": 4, "m": 8}
    params = [sum(p.numel() for p in build_model(resolve_hparams(ModelConfig(family="logreg", size=s)),
                                                schema).parameters()) for s in ("xs", "s", "m")]
    assert params[0] < params[1] < params[2]
    with pytest.raises(ValueError, match=r"model\.hidden does not apply to logreg"):
        resolve_hparams(ModelConfig(family="logreg", hidden=8))


@pytest.mark.slow
def test_defaults_near_bayes_and_logreg_matches_scikit_learn():
    """The issue's bar, on the default data config itself (200,000 rows), with no knob but family and
    size: mlp s within 0.01 of the Bayes-optimal AUC; logreg xs within 0.005 of scikit-learn's LR on the
    very same features."""
    pytest.importorskip("sklearn", reason='the [baselines] extra is not installed: pip install "costbench[baselines]"')
    from costbench.baselines import logistic_regression

    data = load_data(DataConfig(), None)
    mlp = _train("mlp", data, size="s", epochs=None, batch_size=None, lr=None, patience=16)[0]
    logreg = _train("logreg", data, size="xs", epochs=None, batch_size=None, lr=None, patience=16)[0]
    bayes = data.bayes_auc
    mlp_auc, logreg_auc = (evaluate(m, data, EvalConfig(), CPU)["auc"] for m in (mlp, logreg))
    sk_auc = metrics.roc_auc(data.test.label.numpy(), logistic_regression(data)[0])
    numbers = f"bayes {bayes:.4f}, mlp s {mlp_auc:.4f}, logreg xs {logreg_auc:.4f}, sklearn LR {sk_auc:.4f}"
    assert bayes - mlp_auc <= 0.01, numbers
    assert logreg_auc >= sk_auc - 0.005, numbers
