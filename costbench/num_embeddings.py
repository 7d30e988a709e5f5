"""Numeric feature embeddings (Gorishniy, Rubachev, Babenko 2022, "On Embeddings for Numerical Features
in Tabular Deep Learning"): each numeric column becomes a small vector before the backbone sees it.

- ``periodic`` (their PLR): ``ReLU(Linear([cos(2 pi c x), sin(2 pi c x)]))`` per column, with trainable
  frequencies ``c`` initialised N(0, 0.1^2) (inputs are already robust-scaled, so 0.1 is a smooth start);
- ``piecewise`` (their PLE + linear + ReLU): the column's value as its position in each of up to 16
  quantile bins of the training rows (0 below the bin, 1 above it, linear inside), then a per-column
  linear layer and ReLU.

``none`` passes the columns through unchanged. The bins come from ``Schema.numeric_edges`` (the training
quantiles the preparation stores); without them, standard-normal quantiles are used.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import torch
from torch import Tensor, nn

from costbench.data import Schema

FREQUENCIES = 16
FREQUENCY_STD = 0.1
PIECEWISE_BINS = 16


class Identity(nn.Module):
    def __init__(self, n_numeric: int) -> None:
        super().__init__()
        self.out_dim = n_numeric

    def forward(self, x: Tensor) -> Tensor:
        return x


class PerColumnLinear(nn.Module):
    """An independent Linear(d_in, d_out) for each of ``columns`` columns, as one batched einsum."""

    def __init__(self, columns: int, d_in: int, d_out: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(columns, d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(columns, d_out).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:  # [n, columns, d_in] -> [n, columns, d_out]
        return torch.einsum("ncd,cde->nce", x, self.weight) + self.bias

    def flat(self, x: Tensor) -> Tensor:  # [n, columns * d_in] -> [n, columns * d_out]
        """The same map on flattened columns, as one matrix product with the block-diagonal weight."""
        return x @ self.block_diagonal() + self.bias.flatten()

    def block_diagonal(self, inputs: slice = slice(None)) -> Tensor:  # [columns * d, columns * d_out]
        """The weights of input positions ``inputs`` (d of them) as one block-diagonal matrix: block j maps
        column j's inputs to column j's outputs, every other entry is 0."""
        weight = self.weight[:, inputs]
        columns, d_in, d_out = weight.shape
        eye = torch.eye(columns, dtype=weight.dtype, device=weight.device)
        return (eye[:, None, :, None] * weight[:, :, None, :]).reshape(columns * d_in, columns * d_out)


def column_copies(columns: int, times: int, like: Tensor) -> Tensor:
    """The [columns, columns * times] 0/1 matrix whose product with x repeats each column ``times`` times in a
    row: exact (each output is one x times 1 plus zeros), and ONNX Runtime then broadcasts over rows only."""
    eye = torch.eye(columns, dtype=like.dtype, device=like.device)
    return eye[:, :, None].expand(columns, columns, times).reshape(columns, columns * times)


class Periodic(nn.Module):
    def __init__(self, n_numeric: int, dim: int) -> None:
        super().__init__()
        self.frequencies = nn.Parameter(torch.randn(n_numeric, FREQUENCIES) * FREQUENCY_STD)
        self.linear = PerColumnLinear(n_numeric, 2 * FREQUENCIES, dim)
        self.out_dim = n_numeric * dim

    def forward(self, x: Tensor) -> Tensor:
        if torch.onnx.is_in_onnx_export():
            return self._flat(x)
        angles = 2 * math.pi * self.frequencies * x.unsqueeze(-1)
        features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
        return torch.relu(self.linear(features)).flatten(1)

    def _flat(self, x: Tensor) -> Tensor:
        """``forward`` as exported (see ``Piecewise.forward``): the angles over [n, columns * FREQUENCIES], all
        cosines then all sines, and the per-column maps as the matching block-diagonal rows."""
        columns = self.frequencies.shape[0]
        angles = (2 * math.pi * self.frequencies).flatten() * (x @ column_copies(columns, FREQUENCIES, x))
        weight = torch.cat([self.linear.block_diagonal(slice(0, FREQUENCIES)),
                            self.linear.block_diagonal(slice(FREQUENCIES, None))])
        features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
        return torch.relu(features @ weight + self.linear.bias.flatten())


class PiecewiseLinearEncoding(nn.Module):
    """[n, columns] -> [n, columns * bins]: each value's position in each bin, clamped to [0, 1]. Columns
    with fewer distinct edges get fewer bins; the padding bins always read 0."""

    def __init__(self, edges: list[np.ndarray], bins: int) -> None:
        super().__init__()
        left = np.zeros((len(edges), bins), dtype=np.float32)
        inv_width = np.zeros((len(edges), bins), dtype=np.float32)
        for j, column in enumerate(edges):
            column = np.unique(np.asarray(column, dtype=np.float64))
            if len(column) < 2:
                column = np.array([column[0] if len(column) else 0.0, (column[0] if len(column) else 0.0) + 1.0])
            pick = np.unique(np.round(np.linspace(0, len(column) - 1, min(bins, len(column) - 1) + 1)).astype(int))
            chosen = column[pick]
            k = len(chosen) - 1
            left[j, :k] = chosen[:-1]
            inv_width[j, :k] = 1.0 / np.diff(chosen)
        self.register_buffer("left", torch.from_numpy(left))
        self.register_buffer("inv_width", torch.from_numpy(inv_width))
        self.bins = bins
        self.out_dim = len(edges) * bins

    def encode(self, x: Tensor) -> Tensor:  # [n, columns, bins]
        return ((x.unsqueeze(-1) - self.left) * self.inv_width).clamp(0.0, 1.0)

    def encode_flat(self, x: Tensor) -> Tensor:  # [n, columns * bins]
        """``encode(x).flatten(1)`` with each column first copied ``bins`` times (an exact product with a 0/1
        matrix), so the bin arithmetic is a row broadcast over [n, columns * bins]."""
        copies = column_copies(self.left.shape[0], self.bins, x)
        return (torch.addmm(-self.left.flatten(), x, copies) * self.inv_width.flatten()).clamp(0.0, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        if torch.onnx.is_in_onnx_export():  # row broadcasts, as ONNX Runtime runs fastest (Piecewise.forward)
            return self.encode_flat(x)
        return self.encode(x).flatten(1)


class Piecewise(nn.Module):
    def __init__(self, edges: list[np.ndarray], dim: int) -> None:
        super().__init__()
        self.encoding = PiecewiseLinearEncoding(edges, PIECEWISE_BINS)
        self.linear = PerColumnLinear(len(edges), PIECEWISE_BINS, dim)
        self.out_dim = len(edges) * dim

    def forward(self, x: Tensor) -> Tensor:
        if torch.onnx.is_in_onnx_export():
            # the same function as plain matrix-shaped ops: ONNX Runtime runs [n, columns, 1] - [columns, bins]
            # broadcasts and Einsum several times slower than row broadcasts and one GEMM (the per-operator
            # profile: benchmarks/ort_profile.py); eager PyTorch is fastest as it is
            return torch.relu(self.linear.flat(self.encoding.encode_flat(x)))
        return torch.relu(self.linear(self.encoding.encode(x))).flatten(1)


def _edges(schema: Schema) -> list[np.ndarray]:
    if len(schema.numeric_edges) == schema.n_numeric:
        return [np.asarray(e, dtype=np.float64) for e in schema.numeric_edges]
    normal = np.array([NormalDist().inv_cdf(p) for p in np.linspace(0.01, 0.99, 65)])  # numpy: meta-safe
    return [normal for _ in range(schema.n_numeric)]


def piecewise_linear(schema: Schema, bins: int) -> PiecewiseLinearEncoding:
    """The bare encoding (no weights), e.g. for logistic regression's additive bins."""
    return PiecewiseLinearEncoding(_edges(schema), bins)


def make_numeric_embedding(kind: str, schema: Schema, dim: int) -> nn.Module:
    """The module for ``model.num_embedding``; ``out_dim`` says its output width."""
    if kind == "none" or schema.n_numeric == 0:
        return Identity(schema.n_numeric)
    if kind == "periodic":
        return Periodic(schema.n_numeric, dim)
    if kind == "piecewise":
        return Piecewise(_edges(schema), dim)
    raise ValueError(f"unknown model.num_embedding '{kind}'; allowed: none, periodic, piecewise")
