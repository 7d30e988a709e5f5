"""Turning clean columns into model inputs, with every statistic fitted on the training rows only.

Numeric columns (``data.numeric_transform``):

- ``auto`` (default): sign-preserving ``log1p`` for a heavy-tailed column (|skewness| > 2 with at least
  10 distinct values, or listed in ``data.log1p``), then robust scaling ((x - median) / (IQR / 1.349),
  the standard deviation where the IQR is 0) and smooth clipping to (-3, 3) (x / sqrt(1 + (x / 3)^2)),
  the recipe RealMLP uses: one extreme row no longer squeezes every other row into a tiny range;
- ``standard``: z-score with the training mean and standard deviation (``data.log1p`` still applies);
- ``robust``: robust scaling and smooth clipping, without the automatic log1p;
- ``quantile``: the training quantiles mapped onto a standard normal (rank-based, so any monotone
  tail is tamed).

Missing and infinite values are imputed with the training median (of the raw column) and flagged by a
0/1 ``<column>_missing`` indicator. Boolean columns are 0/1 and not scaled.

Categorical columns: indices 1..k for the levels seen at least ``data.rare_min_count`` times in train,
in sorted order; 0 is one shared bucket for rare levels and for levels first seen in val or test, so
its embedding is trained on the rare rows rather than left at its initial value.

Every column's treatment (transform, centre, scale) goes into the data summary, and the quantiles of
each transformed numeric column into the schema, for the piecewise-linear numeric embeddings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

HEAVY_SKEW = 2.0
MIN_DISTINCT_FOR_LOG = 10
CLIP = 3.0
QUANTILE_LEVELS = 1001
EDGE_COUNT = 65  # quantile edges stored per numeric input: up to 64 piecewise-linear bins


def signed_log1p(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.log1p(np.abs(values))


def smooth_clip(values: np.ndarray) -> np.ndarray:
    return values / np.sqrt(1.0 + (values / CLIP) ** 2)


def is_heavy_tailed(values: np.ndarray) -> bool:
    """|skewness| above HEAVY_SKEW, on a column with enough distinct values for a log to matter."""
    if len(np.unique(values[: 100_000])) < MIN_DISTINCT_FOR_LOG:
        return False
    std = values.std()
    if std < 1e-12:
        return False
    return bool(abs(np.mean(((values - values.mean()) / std) ** 3)) > HEAVY_SKEW)


class NumericTransform:
    """One numeric column's fitted transform: optional log1p, then standard, robust+clip or quantile."""

    def __init__(self, kind: str, log1p: bool) -> None:
        self.kind, self.log1p = kind, log1p
        self.center, self.scale = 0.0, 1.0
        self.levels: np.ndarray | None = None
        self.values: np.ndarray | None = None

    @classmethod
    def fit(cls, values: np.ndarray, mode: str, listed_log1p: bool) -> NumericTransform:
        log1p = listed_log1p or (mode == "auto" and is_heavy_tailed(values))
        kind = {"auto": "robust", "standard": "standard", "robust": "robust", "quantile": "quantile"}[mode]
        self = cls(kind, log1p)
        x = signed_log1p(values) if log1p else values
        if kind == "standard":
            std = float(x.std())
            self.center, self.scale = float(x.mean()), std if std > 1e-12 else 1.0
        elif kind == "robust":
            q25, q50, q75 = np.quantile(x, [0.25, 0.5, 0.75])
            scale = (q75 - q25) / 1.349
            if scale < 1e-12:
                scale = float(x.std())
            self.center, self.scale = float(q50), float(scale) if scale > 1e-12 else 1.0
        else:
            levels = np.linspace(0.0, 1.0, QUANTILE_LEVELS)
            qs = np.quantile(x, levels)
            uniq, inverse = np.unique(qs, return_inverse=True)
            self.values = uniq
            self.levels = np.bincount(inverse, weights=levels) / np.bincount(inverse)
        return self

    def __call__(self, values: np.ndarray) -> np.ndarray:
        x = signed_log1p(values) if self.log1p else values
        if self.kind == "quantile":
            assert self.values is not None and self.levels is not None
            if len(self.values) == 1:
                return np.zeros_like(x)
            u = np.interp(x, self.values, self.levels)
            return torch.special.ndtri(torch.from_numpy(np.clip(u, 1e-3, 1 - 1e-3))).numpy()
        z = (x - self.center) / self.scale
        return smooth_clip(z) if self.kind == "robust" else z

    def describe(self) -> dict[str, object]:
        name = ("log1p+" if self.log1p else "") + {"standard": "standard", "robust": "robust+clip",
                                                    "quantile": "quantile-normal"}[self.kind]
        out: dict[str, object] = {"transform": name}
        if self.kind != "quantile":
            out.update(center=round(self.center, 6), scale=round(self.scale, 6))
        return out


class Preparer:
    """Turns clean frames into model tensors' arrays; every statistic comes from the frame it is fitted on."""

    def __init__(self, columns: object, numeric_transform: str = "auto", rare_min_count: int = 1) -> None:
        self.columns = columns
        self.mode = numeric_transform
        self.rare_min_count = rare_min_count
        self.fill: dict[str, float] = {}
        self.transforms: dict[str, NumericTransform] = {}
        self.flagged: list[str] = []  # columns that get a <name>_missing indicator
        self.categories: dict[str, pd.Index] = {}
        self.pooled: dict[str, int] = {}  # levels per column sent to the shared rare bucket
        self.edges: list[list[float]] = []

    def fit(self, frame: pd.DataFrame) -> Preparer:
        cols = self.columns
        for name in cols.numeric + cols.boolean:
            values = frame[name].to_numpy(dtype=np.float64)
            missing = np.isnan(values)
            fill = float(np.median(values[~missing])) if (~missing).any() else 0.0
            self.fill[name] = fill
            if missing.any():
                self.flagged.append(name)
            if name in cols.numeric:
                self.transforms[name] = NumericTransform.fit(np.where(missing, fill, values), self.mode,
                                                             name in cols.log1p)
        for name in cols.categorical:
            column = frame[name].array
            counts = np.bincount(column.codes[column.codes >= 0], minlength=len(column.categories))
            seen = counts > 0
            kept = counts >= self.rare_min_count
            self.pooled[name] = int((seen & ~kept).sum())
            self.categories[name] = pd.Index(np.sort(column.categories[kept].astype(str)))
        numeric, _ = self.transform(frame)
        levels = np.linspace(0.0, 1.0, EDGE_COUNT)
        self.edges = [np.unique(np.quantile(numeric[:, j], levels)).round(6).tolist() if len(numeric) else [0.0]
                      for j in range(numeric.shape[1])]
        return self

    @property
    def numeric_names(self) -> list[str]:
        return self.columns.numeric + self.columns.boolean + [f"{name}_missing" for name in self.flagged]

    @property
    def cardinalities(self) -> list[int]:
        return [len(self.categories[name]) + 1 for name in self.columns.categorical]

    def describe(self) -> dict[str, dict[str, object]]:
        """Each numeric column's treatment, as the data summary reports it."""
        return {name: t.describe() for name, t in self.transforms.items()}

    def transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """float32 [n, n_numeric] and int64 [n, n_categorical] (0 = a rare level or one not seen in train)."""
        n = len(frame)
        cols = self.columns
        numeric = np.empty((n, len(self.numeric_names)), dtype=np.float32)
        for j, name in enumerate(cols.numeric + cols.boolean):
            values = frame[name].to_numpy(dtype=np.float64)
            values = np.where(np.isnan(values), self.fill[name], values)
            if name in self.transforms:
                values = self.transforms[name](values)
            numeric[:, j] = values
        offset = len(cols.numeric) + len(cols.boolean)
        for j, name in enumerate(self.flagged):
            numeric[:, offset + j] = np.isnan(frame[name].to_numpy(dtype=np.float64))
        categorical = np.empty((n, len(cols.categorical)), dtype=np.int64)
        for j, name in enumerate(cols.categorical):
            column = frame[name].array
            known = self.categories[name].get_indexer(column.categories)  # -1: rare or not seen in train
            categorical[:, j] = np.where(column.codes >= 0, known[column.codes], -1) + 1
        return numeric, categorical
