"""Synthetic shoppers: reproducible, on the asked positive rate, and with a known answer a linear model misses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from costbench.data import synthetic
from costbench.data.load import check_data, load_data
from costbench.errors import UserError
from costbench.metrics import roc_auc
from costbench.spec import DataConfig


def small(**overrides) -> DataConfig:
    return DataConfig(**{"rows": 5000, **overrides})


def test_same_seed_same_data_other_seed_other_data():
    a, b = load_data(small(), None), load_data(small(), None)
    other = load_data(small(seed=8), None)
    for name in ("train", "val", "test"):
        for x, y in zip(getattr(a, name).inputs(), getattr(b, name).inputs(), strict=True):
            assert torch.equal(x, y)
        assert torch.equal(getattr(a, name).label, getattr(b, name).label)
    assert a.bayes_auc == b.bayes_auc
    assert not torch.equal(a.train.numeric, other.train.numeric)


def test_tabular_columns_do_not_depend_on_sequence_length():
    long, none = synthetic.generate(2000, sequence_length=20), synthetic.generate(2000, sequence_length=0)
    assert np.array_equal(long.columns["page_value"], none.columns["page_value"])
    assert none.items.shape == (2000, 0)


@pytest.mark.parametrize("rows", [200, 5000])
@pytest.mark.parametrize("rate", [0.02, 0.08, 0.3])
@pytest.mark.parametrize("noise", [0.0, 1.0, 3.0])
def test_positive_rate_is_hit_within_half_a_point(rows, rate, noise):
    gen = synthetic.generate(rows, positive_rate=rate, noise=noise)
    assert abs(gen.label.mean() - rate) <= 0.005
    assert np.all((gen.true_prob >= 0) & (gen.true_prob <= 1))


def test_true_prob_is_calibrated():
    gen = synthetic.generate(50_000)
    assert abs(gen.true_prob.mean() - gen.label.mean()) < 0.003
    top = gen.true_prob > 0.5
    assert abs(gen.label[top].mean() - gen.true_prob[top].mean()) < 0.03


def test_positive_rate_per_split_and_summary():
    data = load_data(small(rows=10_000, positive_rate=0.1), None)
    s = data.summary
    # 1,000 buyers: the automatic validation share is 200 / 1000 = 0.2, to hold about 200 of them
    assert s["val_share"] == 0.2 and s["rows"] == {"train": 6000, "val": 2000, "test": 2000}
    assert all(abs(r - 0.1) < 0.002 for r in s["positive_rate"].values())
    assert s["source"] == "synthetic" and s["duplicates_dropped"] == 0
    assert s["bayes_auc"] == data.bayes_auc
    assert s["columns"]["categorical"] == synthetic.CATEGORICAL
    assert s["sequence"]["padding"] == "left"


def test_noise_zero_makes_the_label_a_function_of_the_features():
    data = load_data(small(noise=0.0), None)
    assert data.bayes_auc == 1.0


def test_more_noise_lowers_the_bayes_auc():
    aucs = [load_data(small(rows=20_000, noise=n), None).bayes_auc for n in (0.5, 1.0, 2.0)]
    assert aucs[0] > aucs[1] > aucs[2] > 0.6


def logistic_regression_auc(data) -> float:
    """Logistic regression fitted by Newton's method on the prepared tensors, categoricals one-hot."""

    def design(split):
        onehot = [torch.nn.functional.one_hot(split.categorical[:, j], k)
                  for j, k in enumerate(data.schema.cardinalities)]
        return torch.cat([torch.ones(len(split), 1), split.numeric, *onehot], dim=1).double()

    x, y = design(data.train), data.train.label.double()
    w = torch.zeros(x.shape[1], dtype=torch.float64)
    ridge = 1e-3 * torch.eye(x.shape[1], dtype=torch.float64)
    for _ in range(12):
        p = torch.sigmoid(x @ w)
        hessian = x.T @ (x * (p * (1 - p))[:, None]) + ridge
        w = w - torch.linalg.solve(hessian, x.T @ (p - y) + ridge @ w)
    score = (design(data.test) @ w).numpy()
    return roc_auc(data.test.label.numpy(), score)


def test_bayes_auc_is_clearly_above_logistic_regression():
    data = load_data(DataConfig(rows=20_000), None)
    lr_auc = logistic_regression_auc(data)
    assert data.bayes_auc == pytest.approx(roc_auc(data.test.label.numpy(), data.test.true_prob.numpy()), abs=1e-4)
    assert 0.85 < data.bayes_auc < 0.95
    assert data.bayes_auc - lr_auc > 0.03, (data.bayes_auc, lr_auc)
    # and the sequence carries signal of its own: the truth without it ranks worse
    gen = synthetic.generate(20_000)
    p = np.clip(gen.true_prob, 1e-9, 1 - 1e-9)
    without_sequence = np.log(p / (1 - p)) - gen.sequence_logit
    assert roc_auc(gen.label, gen.true_prob) - roc_auc(gen.label, without_sequence) > 0.005


def test_schema_and_sequences():
    cfg = small(sequence_length=12, n_items=300, n_categories=10)
    data = load_data(cfg, None)
    schema = data.schema
    assert schema.n_items == 301 and schema.n_item_categories == 11
    assert schema.sequence_length == 12
    assert schema.cardinalities == [11, 4, 9, 10, 4, 13]  # values + the unknown bucket
    assert schema.numeric_names[-1] == "days_since_last_visit_missing"
    for split in (data.train, data.val, data.test):
        items, cats = split.items, split.item_categories
        assert items.dtype == cats.dtype == torch.int64
        assert items.shape == (len(split), 12)
        assert int(items.max()) <= 300 and int(cats.max()) <= 10 and int(items.min()) == 0
        assert torch.equal(items == 0, cats == 0)
        # padded on the left: once a row has a view, every later position has one too
        started = torch.cummax((items != 0).int(), dim=1).values.bool()
        assert torch.equal(started, items != 0)
        assert int(split.categorical.min()) >= 1  # synthetic data never needs the unknown bucket
    # one item, one category
    items, cats = data.train.items.flatten(), data.train.item_categories.flatten()
    pairs = torch.unique(torch.stack([items, cats]), dim=1)
    assert pairs.shape[1] == torch.unique(items).numel()


def test_no_sequences():
    data = load_data(small(sequence_length=0), None)
    assert data.train.items.shape == (len(data.train), 0)
    assert data.schema.sequence_length == data.schema.n_items == data.schema.n_item_categories == 0
    assert data.bayes_auc is not None


def test_prepared_numeric_is_standardised_on_train():
    data = load_data(small(rows=20_000, numeric_transform="standard"), None)
    n_scaled = len(synthetic.NUMERIC)
    x = data.train.numeric[:, :n_scaled]
    assert torch.allclose(x.mean(0), torch.zeros(n_scaled), atol=1e-3)
    assert torch.allclose(x.std(0), torch.ones(n_scaled), atol=1e-2)
    robust = load_data(small(rows=20_000), None).train.numeric[:, :n_scaled]  # auto: robust + smooth clip
    assert float(robust.abs().max()) < 3.0 and torch.allclose(robust.median(0).values, torch.zeros(n_scaled),
                                                                 atol=0.05)
    flags = data.train.numeric[:, n_scaled:]  # weekend and the missing indicator stay 0/1
    assert set(flags.unique().tolist()) == {0.0, 1.0}


def test_class_weight_and_oversample():
    data = load_data(small(class_weight="balanced"), None)
    pos = float(data.train.label.sum())
    assert data.pos_weight == pytest.approx((len(data.train) - pos) / pos)
    over = load_data(small(oversample=0.5), None)
    pos, neg = float(over.train.label.sum()), float((over.train.label == 0).sum())
    assert pos / neg == pytest.approx(0.5, abs=0.001)
    assert over.summary["oversampled_rows"] > 0
    assert len(over.test) == len(data.test) and over.summary["positive_rate"]["test"] == pytest.approx(0.08, abs=0.002)


def test_bad_synthetic_configs():
    with pytest.raises(UserError, match=r"n_items \(10\) must be at least data\.n_categories \(20\)"):
        check_data(small(n_items=10, n_categories=20))
    with pytest.raises(UserError, match="too few to put some in each of train, val and test"):
        check_data(DataConfig(rows=100, positive_rate=0.01))
    check_data(small())  # fine: no error, and nothing generated
