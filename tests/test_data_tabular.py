"""A user's own table: CSV and Parquet round trips, preparation fitted on train, splits, a fixed test file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from costbench.data import synthetic
from costbench.data.load import load_data
from costbench.data.tabular import MISSING, stratified_split
from costbench.spec import DataConfig


def shop_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Sessions with every kind of column: int, float with gaps, bool, text, int codes, an id, a label."""
    rng = np.random.default_rng(seed)
    pages = rng.integers(0, 40, n)
    value = np.round(rng.exponential(10.0, n), 3)
    value[rng.random(n) < 0.1] = np.nan
    bought = rng.random(n) < 0.1 + 0.3 * (pages > 20)
    return pd.DataFrame({
        "session_id": np.arange(n),
        "ProductPages": pages,
        "PageValues": value,
        "Duration": rng.exponential(300.0, n),  # no two rows alike
        "Weekend": rng.random(n) < 0.3,
        "Device": rng.choice(["desktop", "mobile", "tablet"], n),
        "Month": rng.choice(["Feb", "Mar", "May", "Nov"], n),
        "Region": rng.integers(1, 6, n),
        "Revenue": bought,
    })


def tabular(path, **overrides) -> DataConfig:
    source = "parquet" if str(path).endswith(".parquet") else "csv"
    return DataConfig(**{"source": source, "path": str(path), "label": "Revenue", "drop": ["session_id"],
                         "categorical": ["Region"], **overrides})


def write(frame: pd.DataFrame, path):
    if str(path).endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip_with_mixed_column_types(tmp_path, suffix):
    frame = shop_frame()
    data = load_data(tabular(write(frame, tmp_path / f"shop{suffix}"), numeric_transform="standard",
                             split={"val": 0.1}), None)

    cols = data.summary["columns"]
    assert cols["numeric"] == ["ProductPages", "PageValues", "Duration"]
    assert cols["boolean"] == ["Weekend"]
    assert cols["categorical"] == ["Device", "Month", "Region"]
    assert cols["dropped"] == ["session_id"] and cols["missing_indicators"] == ["PageValues_missing"]
    assert data.schema.numeric_names == ["ProductPages", "PageValues", "Duration", "Weekend", "PageValues_missing"]
    assert data.schema.categorical_names == ["Device", "Month", "Region"]
    assert data.schema.cardinalities == [4, 5, 6]  # values seen in train + the unknown bucket
    assert data.schema.sequence_length == 0 and data.train.items.shape == (len(data.train), 0)
    assert data.bayes_auc is None and data.train.true_prob is None
    assert sum(data.summary["rows"].values()) == len(frame)
    assert data.summary["positive"] == "True"

    # the same rows, prepared by hand from the training split's statistics
    train = frame.iloc[stratified_split(frame["Revenue"].to_numpy(), {"val": 0.1, "test": 0.2}, 0)["train"]]
    pages = train["ProductPages"].to_numpy(float)
    assert np.allclose(data.train.numeric[:, 0].numpy(), (pages - pages.mean()) / pages.std(), atol=1e-5)
    value = train["PageValues"].to_numpy()
    filled = np.where(np.isnan(value), np.nanmedian(value), value)
    assert np.allclose(data.train.numeric[:, 1].numpy(), (filled - filled.mean()) / filled.std(), atol=1e-5)
    assert np.array_equal(data.train.numeric[:, 3].numpy(), train["Weekend"].to_numpy(float))
    assert np.array_equal(data.train.numeric[:, 4].numpy(), np.isnan(value).astype(float))
    device = {"desktop": 1, "mobile": 2, "tablet": 3}  # sorted values from 1; 0 is the unknown bucket
    assert data.train.categorical[:, 0].tolist() == [device[d] for d in train["Device"]]
    assert data.train.categorical[:, 2].tolist() == train["Region"].tolist()  # codes 1..5 -> '1'..'5' -> 1..5
    assert torch.equal(data.train.label, torch.tensor(train["Revenue"].to_numpy(), dtype=torch.float32))


def test_csv_and_parquet_prepare_the_same_tensors(tmp_path):
    frame = shop_frame()
    a = load_data(tabular(write(frame, tmp_path / "shop.csv")), None)
    b = load_data(tabular(write(frame, tmp_path / "shop.parquet")), None)
    for name in ("train", "val", "test"):
        for x, y in zip(getattr(a, name).inputs(), getattr(b, name).inputs(), strict=True):
            assert torch.equal(x, y)


def test_synthetic_data_exported_as_csv_prepares_like_synthetic(tmp_path):
    cfg = DataConfig(rows=3000, sequence_length=0)
    gen = synthetic.generate(cfg.rows, sequence_length=0)
    frame = gen.frame().assign(purchase=gen.label)
    frame.to_csv(tmp_path / "synthetic.csv", index=False)
    from_csv = load_data(DataConfig(source="csv", path=str(tmp_path / "synthetic.csv"), label="purchase",
                                    categorical=synthetic.CATEGORICAL, log1p=synthetic.LOG1P,
                                    numeric=synthetic.NUMERIC + synthetic.BOOLEAN), None)
    direct = load_data(cfg, None)
    assert from_csv.schema.numeric_names == direct.schema.numeric_names
    assert from_csv.schema.cardinalities == direct.schema.cardinalities
    for name in ("train", "val", "test"):
        assert torch.allclose(getattr(from_csv, name).numeric, getattr(direct, name).numeric, atol=1e-5)
        assert torch.equal(getattr(from_csv, name).categorical, getattr(direct, name).categorical)
        assert torch.equal(getattr(from_csv, name).label, getattr(direct, name).label)


def test_unknown_and_missing_categories(tmp_path):
    main = shop_frame()
    main.loc[::7, "Device"] = np.nan  # missing in train too: a category of its own
    holdout = shop_frame(200, seed=1)
    holdout.loc[:49, "Device"] = "smart_tv"  # never seen in the main file
    cfg = tabular(write(main, tmp_path / "main.csv"), test_path=str(write(holdout, tmp_path / "holdout.csv")))
    data = load_data(cfg, None)
    assert data.schema.cardinalities[0] == 5  # <missing>, desktop, mobile, tablet + unknown
    test_device = data.test.categorical[:, 0]
    assert (test_device[:50] == 0).all() and (test_device[50:] > 0).all()
    assert MISSING == "<missing>"
    assert (data.train.categorical[:, 0] == 1).any()  # '<missing>' sorts first


def test_fixed_test_file(tmp_path):
    main, holdout = shop_frame(600), shop_frame(250, seed=3)
    cfg = tabular(write(main, tmp_path / "main.csv"), test_path=str(write(holdout, tmp_path / "holdout.csv")),
                  split={"val": 0.1})
    data = load_data(cfg, None)
    assert len(data.test) == 250
    assert len(data.train) + len(data.val) == 600 and len(data.val) == pytest.approx(60, abs=1)
    assert torch.equal(data.test.label, torch.tensor(holdout["Revenue"].to_numpy(), dtype=torch.float32))
    assert data.summary["test_path"].endswith("holdout.csv")
    assert data.summary["rows_read"] == 850


def test_dedupe_counts_and_can_be_turned_off(tmp_path):
    frame = shop_frame(500)
    doubled = pd.concat([frame, frame.iloc[:37].assign(session_id=lambda f: f.session_id + 10_000)])
    path = write(doubled, tmp_path / "dups.csv")
    data = load_data(tabular(path), None)  # session_id is dropped, so the copies are exact duplicates
    assert data.summary["duplicates_dropped"] == 37
    assert sum(data.summary["rows"].values()) == 500
    kept = load_data(tabular(path, dedupe=False), None)
    assert kept.summary["duplicates_dropped"] == 0 and sum(kept.summary["rows"].values()) == 537


def test_split_is_stratified_and_reproducible(tmp_path):
    path = write(shop_frame(2000), tmp_path / "shop.csv")
    a, b = load_data(tabular(path), None), load_data(tabular(path), None)
    other = load_data(tabular(path, split={"val": 0.1, "test": 0.2, "seed": 1}), None)
    assert torch.equal(a.test.numeric, b.test.numeric)
    assert not torch.equal(a.test.numeric, other.test.numeric)
    rates = a.summary["positive_rate"]
    assert max(rates.values()) - min(rates.values()) < 0.01


@pytest.mark.parametrize(("values", "positive", "bought"), [
    (["yes", "no"], None, "yes"),
    (["TRUE", "FALSE"], None, "TRUE"),
    ([1, 0], None, 1),
    (["bought", "browsed"], "bought", "bought"),
    (["bought", "browsed"], "BOUGHT", "bought"),
    ([True, False], "TRUE", True),
    (["yes", "no"], True, "yes"),  # YAML reads an unquoted `positive: yes` as true
    ([2, 1], 2, 2),
])
def test_label_values_and_positive(tmp_path, values, positive, bought):
    frame = shop_frame(400)
    rng = np.random.default_rng(5)
    is_bought = rng.random(len(frame)) < 0.25
    frame["Revenue"] = np.where(is_bought, values[0], values[1])
    data = load_data(tabular(write(frame, tmp_path / "shop.csv"), positive=positive), None)
    labels = torch.cat([data.train.label, data.val.label, data.test.label])
    assert int(labels.sum()) == int(is_bought.sum())
    assert data.summary["positive"].lower() == str(bought).lower()


def test_log1p_columns(tmp_path):
    frame = shop_frame()
    data = load_data(tabular(write(frame, tmp_path / "shop.csv"), log1p=["ProductPages"], numeric_transform="standard",
                             split={"val": 0.1}), None)
    train = frame.iloc[stratified_split(frame["Revenue"].to_numpy(), {"val": 0.1, "test": 0.2}, 0)["train"]]
    logged = np.log1p(train["ProductPages"].to_numpy(float))
    assert np.allclose(data.train.numeric[:, 0].numpy(), (logged - logged.mean()) / logged.std(), atol=1e-5)


def test_inferred_and_ignored_columns(tmp_path):
    frame = shop_frame()
    path = write(frame, tmp_path / "shop.csv")
    data = load_data(tabular(path, numeric=["ProductPages"], categorical=["Device"], drop=[]), None)
    assert data.summary["columns"]["ignored"] == ["session_id", "PageValues", "Duration", "Weekend", "Month",
                                                  "Region"]
    assert data.schema.numeric_names == ["ProductPages"] and data.schema.categorical_names == ["Device"]
    # numbers stored as text (a Parquet string column) are numbers
    frame["ProductPages"] = frame["ProductPages"].astype(str)
    text = load_data(tabular(write(frame, tmp_path / "text.parquet")), None)
    assert text.summary["columns"]["numeric"] == ["ProductPages", "PageValues", "Duration"]


def test_semicolon_separated_csv(tmp_path):
    frame = shop_frame()
    frame.to_csv(tmp_path / "shop.csv", index=False, sep=";")
    data = load_data(tabular(tmp_path / "shop.csv"), None)
    assert data.schema.categorical_names == ["Device", "Month", "Region"]


def test_class_weight_and_oversample_touch_only_train(tmp_path):
    path = write(shop_frame(1000), tmp_path / "shop.csv")
    plain = load_data(tabular(path), None)
    weighted = load_data(tabular(path, class_weight="balanced"), None)
    pos = float(weighted.train.label.sum())
    assert weighted.pos_weight == pytest.approx((len(weighted.train) - pos) / pos)
    assert plain.pos_weight is None
    over = load_data(tabular(path, oversample=1.0), None)
    assert float(over.train.label.mean()) == pytest.approx(0.5, abs=0.002)
    assert torch.equal(over.val.label, plain.val.label) and torch.equal(over.test.numeric, plain.test.numeric)
    assert over.summary["oversampled_rows"] == len(over.train) - len(plain.train)


def test_test_file_is_used_as_it_is_and_leakage_is_counted(tmp_path):
    """A fixed test file keeps every row, in its order, duplicates included; rows it shares with the
    main file are reported, not removed."""
    main, holdout = shop_frame(600), shop_frame(250, seed=3)
    holdout = pd.concat([holdout, holdout.iloc[:20], main.iloc[:7]], ignore_index=True)  # 20 repeats, 7 leaked
    cfg = tabular(write(main, tmp_path / "main.csv"), test_path=str(write(holdout, tmp_path / "holdout.csv")))
    data = load_data(cfg, None)
    assert len(data.test) == 277 and data.summary["test_file_rows"] == 277
    assert torch.equal(data.test.label, torch.tensor(holdout["Revenue"].to_numpy(), dtype=torch.float32))
    pages = data.test.numeric[:, 0]
    assert torch.equal(pages[250:270], pages[:20])  # the repeated rows are still there, in place
    assert data.summary["leakage_rows"] == 7
    assert any("7 rows of main.csv also occur in the test file" in w for w in data.summary["warnings"])


def test_each_numeric_transform_is_recorded_and_fitted_on_train(tmp_path):
    frame = shop_frame(2000)
    frame["Duration"] = np.random.default_rng(1).lognormal(5.0, 2.0, len(frame))  # heavy right tail
    path = write(frame, tmp_path / "shop.csv")
    auto = load_data(tabular(path), None)
    kinds = {name: t["transform"] for name, t in auto.summary["numeric_transforms"].items()}
    assert kinds == {"ProductPages": "robust+clip", "PageValues": "log1p+robust+clip", "Duration": "log1p+robust+clip"}
    assert auto.train.numeric[:, :3].abs().max() < 3.0  # smooth clipping bounds every value
    train = frame.iloc[stratified_split(frame["Revenue"].to_numpy(), {"val": 0.1, "test": 0.2}, 0)["train"]]
    pages = train["ProductPages"].to_numpy(float)
    q25, q50, q75 = np.quantile(pages, [0.25, 0.5, 0.75])
    assert auto.summary["numeric_transforms"]["ProductPages"]["center"] == pytest.approx(q50)
    assert auto.summary["numeric_transforms"]["ProductPages"]["scale"] == pytest.approx((q75 - q25) / 1.349, rel=1e-5)
    quantile = load_data(tabular(path, numeric_transform="quantile"), None)
    assert {t["transform"] for t in quantile.summary["numeric_transforms"].values()} == {"quantile-normal"}
    duration = quantile.train.numeric[:, 2]
    assert abs(float(duration.mean())) < 0.05 and float(duration.std()) == pytest.approx(1.0, abs=0.1)
    # changing the validation rows' values changes nothing fitted
    shifted = frame.copy()
    val_rows = stratified_split(frame["Revenue"].to_numpy(), {"val": 0.1, "test": 0.2}, 0)["val"]
    shifted.loc[val_rows, "ProductPages"] += 1000
    moved = load_data(tabular(write(shifted, tmp_path / "shifted.csv")), None)
    assert moved.summary["numeric_transforms"]["ProductPages"] == auto.summary["numeric_transforms"]["ProductPages"]


def test_integer_codes_are_also_categories_unless_named(tmp_path):
    frame = shop_frame(2000)
    frame["Store"] = np.random.default_rng(2).integers(1, 9, len(frame))  # 8 integer codes
    path = write(frame, tmp_path / "shop.csv")
    data = load_data(tabular(path), None)
    assert data.summary["columns"]["integer_codes_also_categorical"] == ["Store"]
    assert "Store" in data.schema.numeric_names and "Store:cat" in data.schema.categorical_names
    named = load_data(tabular(path, numeric=["ProductPages", "Store"], categorical=["Region"]), None)
    assert named.summary["columns"]["integer_codes_also_categorical"] == []
    assert "Store:cat" not in named.schema.categorical_names


def test_rare_levels_share_the_unknown_bucket(tmp_path):
    frame = shop_frame(2000)
    frame.loc[:3, "Device"] = "fridge"  # 4 rows at most in train: rare
    data = load_data(tabular(write(frame, tmp_path / "shop.csv"), rare_min_count=10), None)
    assert data.summary["rare_levels_pooled"]["Device"] == 1
    assert data.schema.cardinalities[0] == 4  # desktop, mobile, tablet + the rare/unknown bucket


def test_validation_share_grows_to_hold_enough_buyers(tmp_path):
    frame = shop_frame(1000)
    data = load_data(tabular(write(frame, tmp_path / "shop.csv")), None)
    positives = int(frame["Revenue"].sum())
    assert data.summary["val_share"] == pytest.approx(min(0.25, max(0.1, 200 / positives)))
    assert any("validation split holds only" in w for w in data.summary["warnings"]) == (
        int(data.val.label.sum()) < 50)
