"""Numeric feature embeddings: the piecewise-linear encoding's values at known points, and that every
kind builds, runs and reports its width."""

from __future__ import annotations

import pytest
import torch

from costbench.data import Schema
from costbench.num_embeddings import make_numeric_embedding, piecewise_linear

SCHEMA = Schema(numeric_names=["a", "flag"], categorical_names=[], cardinalities=[], sequence_length=0,
                n_items=0, n_item_categories=0, numeric_edges=[[0.0, 1.0, 2.0, 4.0], [0.0, 1.0]])


def test_piecewise_linear_encoding_is_the_position_in_each_bin():
    encoding = piecewise_linear(SCHEMA, 3)
    x = torch.tensor([[-1.0, 0.0], [0.5, 1.0], [3.0, 0.0], [9.0, 1.0]])
    out = encoding(x).reshape(4, 2, 3)
    assert out[:, 0].tolist() == [[0, 0, 0], [0.5, 0, 0], [1, 1, 0.5], [1, 1, 1]]
    assert out[:, 1].tolist() == [[0, 0, 0], [1, 0, 0], [0, 0, 0], [1, 0, 0]]  # one bin; padding reads 0


@pytest.mark.parametrize("kind", ["none", "periodic", "piecewise"])
def test_every_kind_builds_and_reports_its_width(kind):
    module = make_numeric_embedding(kind, SCHEMA, 4)
    out = module(torch.randn(5, 2))
    assert out.shape == (5, module.out_dim) and torch.isfinite(out).all()
    assert module.out_dim == (2 if kind == "none" else 8)


def test_the_flat_forms_are_the_same_numbers():
    """The exported graph computes the piecewise embedding as row broadcasts and one block-diagonal GEMM;
    copying a column by a 0/1 product and the block-diagonal zeros change no value."""
    from costbench.num_embeddings import PerColumnLinear

    torch.manual_seed(0)
    encoding = piecewise_linear(SCHEMA, 3)
    x = torch.randn(7, 2) * 3
    assert torch.equal(encoding.encode_flat(x), encoding(x))
    linear = PerColumnLinear(2, 3, 4)
    z = torch.rand(7, 2, 3)
    torch.testing.assert_close(linear.flat(z.flatten(1)), linear(z).flatten(1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["periodic", "piecewise"])
def test_the_exported_form_computes_what_eager_does(kind, monkeypatch):
    torch.manual_seed(0)
    module = make_numeric_embedding(kind, SCHEMA, 4)
    x = torch.randn(9, 2) * 2
    eager = module(x)
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    torch.testing.assert_close(module(x), eager, rtol=1e-5, atol=1e-6)
