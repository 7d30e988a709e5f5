"""The one way a trial gets its data: ``load_data``; and the pre-flight check: ``check_data``.

``load_data(cfg, cache_dir)`` returns the prepared splits as tensors, with the schema a model builds its
layers from and a summary for the run. With a ``cache_dir`` the result is stored there and reused by
every later call with the same data config and file content (see ``cache.py``); with ``None`` it is
prepared in memory each time.

``check_data(cfg)`` runs every check ``load_data`` makes on a user's file, without preparing anything,
so a sweep can refuse a bad file before any trial starts. For synthetic data it only checks the
parameters (it does not generate).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from costbench.data import PreparedData, Schema, Split, synthetic, tabular
from costbench.data.cache import cache_key, load_or_build
from costbench.data.prepare import Preparer
from costbench.errors import UserError
from costbench.metrics import roc_auc

if TYPE_CHECKING:
    from costbench.spec import DataConfig

SYNTHETIC_LABEL = "purchase"


def load_data(cfg: DataConfig, cache_dir: str | Path | None) -> PreparedData:
    """Prepared train/val/test tensors for a DataConfig. Raises UserError for a bad file or config."""
    if cache_dir is None:
        data = prepare(cfg)
        data.summary["cache"] = None
        return data
    key = cache_key(cfg)
    data, hit = load_or_build(Path(cache_dir), key, lambda: prepare(cfg))
    data.summary["cache"] = {"key": key, "hit": hit}
    return data


def check_data(cfg: DataConfig) -> None:
    """Raise the UserError ``load_data`` would raise for this config's data, without preparing it."""
    if cfg.source == "synthetic":
        _check_synthetic(cfg)
    else:
        tabular.validate(cfg)


def prepare(cfg: DataConfig) -> PreparedData:
    start = time.perf_counter()
    data = _prepare_synthetic(cfg) if cfg.source == "synthetic" else _prepare_tabular(cfg)
    data.summary["prepare_seconds"] = round(time.perf_counter() - start, 3)
    return data


# ----------------------------------------------------------------------------------------- synthetic


def _check_synthetic(cfg: DataConfig) -> None:
    synthetic.check_config(cfg.n_items, cfg.n_categories)
    positives = min(max(round(cfg.positive_rate * cfg.rows), 1), cfg.rows - 1)
    val_share = tabular.resolve_val_share(cfg.split.val, positives)
    for what, count in (("bought", positives), ("not-bought", cfg.rows - positives)):
        val, test = round(val_share * count), round(cfg.split.test * count)
        if min(val, test, count - val - test) < 1:
            raise UserError(f"data.rows {cfg.rows} at positive_rate {cfg.positive_rate:g} gives {count} {what} "
                            "rows, too few to put some in each of train, val and test; raise data.rows")


SYNTHETIC_COLUMNS = tabular.Columns(label=SYNTHETIC_LABEL, numeric=list(synthetic.NUMERIC),
                                    boolean=list(synthetic.BOOLEAN), categorical=list(synthetic.CATEGORICAL),
                                    log1p=list(synthetic.LOG1P))


def _generate(cfg: DataConfig, rows: int, stream: int = 0) -> synthetic.SyntheticData:
    return synthetic.generate(rows, positive_rate=cfg.positive_rate, noise=cfg.noise,
                              sequence_length=cfg.sequence_length, n_items=cfg.n_items,
                              n_categories=cfg.n_categories, seed=cfg.seed, stream=stream)


def _synthetic_splits(cfg: DataConfig, gen: synthetic.SyntheticData) -> tuple[float, dict[str, np.ndarray]]:
    val_share = tabular.resolve_val_share(cfg.split.val, int(gen.label.sum()))
    return val_share, tabular.stratified_split(gen.label, {"val": val_share, "test": cfg.split.test},
                                               cfg.split.seed)


def synthetic_preparer(cfg: DataConfig) -> Preparer:
    """The preparation fitted on the training split of the synthetic data ``cfg`` describes (the one
    ``load_data`` fits), for preparing more rows of the same shop alike."""
    _check_synthetic(cfg)
    gen = _generate(cfg, cfg.rows)
    _, splits = _synthetic_splits(cfg, gen)
    return Preparer(SYNTHETIC_COLUMNS, cfg.numeric_transform, cfg.rare_min_count).fit(gen.frame().iloc[splits["train"]])


def extra_synthetic_rows(cfg: DataConfig, rows: int, preparer: Preparer) -> Split:
    """``rows`` fresh sessions of the shop ``cfg`` describes (generator stream 1, none of them a row of the
    data itself), prepared with ``preparer`` (``synthetic_preparer(cfg)``), so a model reads them exactly
    like training rows. Distillation's teacher labels them; their drawn label is never read."""
    extra = _generate(cfg, rows, stream=1)
    items = (extra.items, extra.item_categories) if cfg.sequence_length > 0 else (None, None)
    return _to_split(preparer, extra.frame(), extra.label, np.arange(rows), *items, None)


def _prepare_synthetic(cfg: DataConfig) -> PreparedData:
    _check_synthetic(cfg)
    gen = _generate(cfg, cfg.rows)
    frame = gen.frame()
    columns = SYNTHETIC_COLUMNS
    val_share, splits = _synthetic_splits(cfg, gen)
    sources = {name: (frame, gen.label, idx) for name, idx in splits.items()}
    has_seq = cfg.sequence_length > 0
    summary = {
        "source": "synthetic", "path": None, "test_path": None, "label": SYNTHETIC_LABEL, "positive": "1",
        "rows_read": cfg.rows, "duplicates_dropped": 0, "leakage_rows": None, "val_share": val_share,
        "sequence": {"length": cfg.sequence_length, "n_items": cfg.n_items + 1,
                     "n_item_categories": cfg.n_categories + 1, "padding": "left"} if has_seq else None,
        "warnings": [],
    }
    return _assemble(cfg, columns, sources, summary, items=gen.items if has_seq else None,
                     item_categories=gen.item_categories if has_seq else None, true_prob=gen.true_prob)


# ----------------------------------------------------------------------------------------- tabular


def _prepare_tabular(cfg: DataConfig) -> PreparedData:
    checked = tabular.validate(cfg)
    main, test = checked.main, checked.test
    sources = {name: (main.frame, main.label, idx) for name, idx in checked.splits.items() if name != "test"}
    sources["test"] = ((test.frame, test.label, checked.splits["test"]) if test is not None
                       else (main.frame, main.label, checked.splits["test"]))
    summary = {
        "source": cfg.source, "path": str(main.path), "test_path": str(test.path) if test else None,
        "label": checked.columns.label, "positive": checked.positive,
        "rows_read": main.rows_read + (test.rows_read if test else 0),
        "duplicates_dropped": checked.duplicates_dropped, "leakage_rows": checked.leakage_rows,
        "val_share": tabular.resolve_val_share(cfg.split.val, int(main.label.sum())),
        "test_file_rows": None if test is None else len(test.label),
        "sequence": None, "warnings": checked.warnings,
    }
    return _assemble(cfg, checked.columns, sources, summary)


# ----------------------------------------------------------------------------------------- both


def _assemble(cfg: DataConfig, columns: tabular.Columns,
              sources: dict[str, tuple[pd.DataFrame, np.ndarray, np.ndarray]], summary: dict[str, Any], *,
              items: np.ndarray | None = None, item_categories: np.ndarray | None = None,
              true_prob: np.ndarray | None = None) -> PreparedData:
    """Fit the preparation on train, turn every split into tensors, and write the summary."""
    train_frame, train_label, train_idx = sources["train"]
    preparer = Preparer(columns, cfg.numeric_transform, cfg.rare_min_count).fit(train_frame.iloc[train_idx])
    if cfg.oversample:
        oversampled = tabular.oversample(train_idx, train_label, cfg.oversample, cfg.split.seed)
        summary["oversampled_rows"] = int(len(oversampled) - len(train_idx))
        sources = {**sources, "train": (train_frame, train_label, oversampled)}
    else:
        summary["oversampled_rows"] = 0

    seq_len = 0 if items is None else items.shape[1]
    splits = {name: _to_split(preparer, frame, label, idx, items, item_categories, true_prob)
              for name, (frame, label, idx) in sources.items()}

    train_pos = int(splits["train"].label.sum())
    pos_weight = ((len(splits["train"]) - train_pos) / train_pos) if cfg.class_weight == "balanced" else None
    bayes_auc = None
    if true_prob is not None:
        _, test_label, test_idx = sources["test"]
        bayes_auc = round(roc_auc(test_label[test_idx], true_prob[test_idx]), 6)

    schema = Schema(
        numeric_names=preparer.numeric_names, categorical_names=list(columns.categorical),
        cardinalities=preparer.cardinalities, sequence_length=seq_len, numeric_edges=preparer.edges,
        n_items=0 if items is None else int(summary["sequence"]["n_items"]),
        n_item_categories=0 if items is None else int(summary["sequence"]["n_item_categories"]),
    )
    summary.update({
        "rows": {name: len(s) for name, s in splits.items()},
        "positive_rate": {name: round(float(s.label.mean()), 6) for name, s in splits.items()},
        "columns": {**columns.by_kind(), "missing_indicators": [f"{n}_missing" for n in preparer.flagged]},
        "cardinalities": dict(zip(columns.categorical, preparer.cardinalities, strict=True)),
        "numeric_transforms": preparer.describe(),
        "rare_levels_pooled": preparer.pooled,
        "bayes_auc": bayes_auc,
        "pos_weight": None if pos_weight is None else round(pos_weight, 6),
    })
    return PreparedData(schema=schema, train=splits["train"], val=splits["val"], test=splits["test"],
                        pos_weight=pos_weight, bayes_auc=bayes_auc, summary=summary)


def _to_split(preparer: Preparer, frame: pd.DataFrame, label: np.ndarray, idx: np.ndarray,
              items: np.ndarray | None, item_categories: np.ndarray | None,
              true_prob: np.ndarray | None) -> Split:
    """Rows ``idx`` of a frame (and of its sequences) as model tensors, through a fitted preparation."""
    numeric, categorical = preparer.transform(frame.iloc[idx])
    if items is None or item_categories is None:
        seq = seq_cat = torch.zeros((len(idx), 0), dtype=torch.int64)
    else:
        seq, seq_cat = torch.from_numpy(items[idx]), torch.from_numpy(item_categories[idx])
    return Split(
        numeric=torch.from_numpy(numeric), categorical=torch.from_numpy(categorical), items=seq,
        item_categories=seq_cat, label=torch.from_numpy(label[idx].astype(np.float32)),
        true_prob=None if true_prob is None else torch.from_numpy(true_prob[idx].astype(np.float32)),
    )
