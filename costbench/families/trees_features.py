"""The feature matrix every tree family reads: one float32 numpy array per split, built the same way.

Columns: the numeric columns as prepared, then the categorical codes (each library is told which
columns are categorical and handles them natively where it can), then five aggregates of the session
sequence when the data has one: its length, the number of distinct item categories and items in it,
and the largest count of one category and of one item. Raw item ids as categoricals made LightGBM
worse (measured in the README): with 5,000 levels the splits overfit, while the aggregates carry what a
tree can use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from costbench.data import Schema, Split

SEQUENCE_FEATURES = ("seq_length", "seq_distinct_categories", "seq_top_category_count", "seq_distinct_items",
                     "seq_top_item_count")


@dataclass(frozen=True)
class FeatureLayout:
    """Which columns of the matrix are what."""

    names: list[str]
    categorical: list[int]  # column indices holding category codes (0..cardinality-1)
    cardinalities: list[int]


def feature_layout(schema: Schema) -> FeatureLayout:
    n_num, n_cat = schema.n_numeric, len(schema.categorical_names)
    sequence = list(SEQUENCE_FEATURES) if schema.sequence_length > 0 else []
    return FeatureLayout(names=[*schema.numeric_names, *schema.categorical_names, *sequence],
                         categorical=list(range(n_num, n_num + n_cat)), cardinalities=list(schema.cardinalities))


def feature_matrix(split: Split, rows: Any = None) -> np.ndarray:
    """float32 [n, features] for some rows of ``split`` (all rows when ``rows`` is None)."""
    index = slice(None) if rows is None else rows
    parts = [split.numeric[index].numpy(), split.categorical[index].numpy().astype(np.float32)]
    items, categories = split.items[index].numpy(), split.item_categories[index].numpy()
    if items.shape[1] > 0:
        parts.append(sequence_aggregates(items, categories))
    return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)


def sequence_aggregates(items: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """float32 [n, 5]: the columns of ``SEQUENCE_FEATURES`` (0 is padding in both id matrices)."""
    length = (items > 0).sum(axis=1)
    distinct_cat, top_cat = _distinct_and_top_count(categories)
    distinct_item, top_item = _distinct_and_top_count(items)
    return np.stack([length, distinct_cat, top_cat, distinct_item, top_item], axis=1).astype(np.float32)


def _distinct_and_top_count(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: how many distinct non-zero ids, and how often the most frequent one occurs."""
    ordered = np.sort(ids, axis=1)
    valid = ordered > 0
    new = np.ones(ordered.shape, dtype=bool)
    new[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    run = np.zeros(ordered.shape, dtype=np.int32)
    for j in range(ordered.shape[1]):
        previous = run[:, j - 1] if j else 0
        run[:, j] = np.where(new[:, j], 1, previous + 1)
    run[~valid] = 0
    return (new & valid).sum(axis=1), run.max(axis=1)
