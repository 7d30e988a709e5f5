"""Purchase data, prepared once per sweep into tensors every model family reads the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the sweep loader imports costbench.data.fingerprint without torch
    import torch


@dataclass(frozen=True)
class Schema:
    """What a model needs to know about its inputs to build its layers."""

    numeric_names: list[str]
    categorical_names: list[str]
    cardinalities: list[int]  # per categorical column, the unknown bucket included
    sequence_length: int  # 0 when the data has no session sequences
    n_items: int  # item-id vocabulary, padding id 0 included
    n_item_categories: int  # category-id vocabulary of the sequence, padding id 0 included
    # per numeric input, training quantiles of its prepared values (piecewise-linear embeddings' bins);
    # empty: standard-normal quantiles are assumed
    numeric_edges: list[list[float]] = field(default_factory=list)

    @property
    def n_numeric(self) -> int:
        return len(self.numeric_names)


@dataclass
class Split:
    """One split as tensors. ``items``/``item_categories`` are [n, 0] when there are no sequences."""

    numeric: torch.Tensor  # float32 [n, n_numeric]
    categorical: torch.Tensor  # int64 [n, n_categorical]
    items: torch.Tensor  # int64 [n, sequence_length], 0 = padding
    item_categories: torch.Tensor  # int64 [n, sequence_length], 0 = padding
    label: torch.Tensor  # float32 [n], 1 = bought
    true_prob: torch.Tensor | None = None  # synthetic data: the known purchase probability

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def inputs(self, index: torch.Tensor | slice | None = None) -> tuple[torch.Tensor, ...]:
        """The model's positional inputs, (numeric, categorical, items, item_categories), for some rows."""
        tensors = (self.numeric, self.categorical, self.items, self.item_categories)
        return tensors if index is None else tuple(t[index] for t in tensors)


@dataclass
class PreparedData:
    schema: Schema
    train: Split
    val: Split
    test: Split
    pos_weight: float | None = None  # class_weight: balanced -> negatives / positives in train
    bayes_auc: float | None = None  # best AUC any model could reach on the test split, when known
    summary: dict[str, Any] = field(default_factory=dict)
