"""Model families: shapes, sizes that grow, and the inputs real data throws at them."""

from __future__ import annotations

import pytest
import torch

from costbench.data import Schema
from costbench.model_presets import PRESETS, resolve_hparams
from costbench.models import build_model, count_params
from costbench.spec import SEQUENCE_FAMILIES, SIZES, ModelConfig

FAMILIES = tuple(PRESETS)  # the network families; the tree families are tested in test_trees.py

SCHEMA = Schema(numeric_names=["a", "b", "c"], categorical_names=["device", "region"], cardinalities=[4, 7],
                sequence_length=5, n_items=30, n_item_categories=6)
TABLE_ONLY = Schema(numeric_names=["a", "b"], categorical_names=["month"], cardinalities=[13],
                    sequence_length=0, n_items=1, n_item_categories=1)


def _inputs(schema: Schema, n: int = 9) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    categorical = torch.stack([torch.randint(0, c, (n,), generator=g) for c in schema.cardinalities], 1)
    items = torch.randint(0, schema.n_items, (n, schema.sequence_length), generator=g)
    item_categories = torch.randint(0, schema.n_item_categories, (n, schema.sequence_length), generator=g)
    items[0] = 0  # a session with no viewed items at all
    item_categories[0] = 0
    return torch.randn(n, schema.n_numeric, generator=g), categorical, items, item_categories


def _model(family: str, size: str = "xs", schema: Schema = SCHEMA, **overrides) -> torch.nn.Module:
    return build_model(resolve_hparams(ModelConfig(family=family, size=size, **overrides)), schema)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_gives_one_finite_logit_per_row(family):
    model = _model(family).eval()
    logits = model(*_inputs(SCHEMA))
    assert logits.shape == (9,) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("family", ["logreg", "mlp", "dcn"])
def test_tabular_families_run_without_sequences(family):
    model = _model(family, schema=TABLE_ONLY).eval()
    assert model(*_inputs(TABLE_ONLY)).shape == (9,)


@pytest.mark.parametrize("family", SEQUENCE_FAMILIES)
def test_sequence_family_without_sequences_is_refused(family):
    with pytest.raises(ValueError, match="sequence"):
        _model(family, schema=TABLE_ONLY)


@pytest.mark.parametrize("family", FAMILIES)
def test_params_grow_with_size(family):
    with torch.device("meta"):  # shapes only: even xl costs no memory
        counts = [count_params(_model(family, size)) for size in SIZES]
    assert counts == sorted(set(counts)), counts


def test_explicit_keys_override_the_preset():
    base = count_params(_model("mlp", "s"))
    assert count_params(_model("mlp", "s", hidden=200)) > base
    assert count_params(_model("mlp", "s", layers=1)) < base


def test_sequence_order_matters_only_to_sequence_families():
    inputs = _inputs(SCHEMA)
    flipped = (*inputs[:2], inputs[2].flip(1), inputs[3].flip(1))
    torch.manual_seed(0)
    for family in FAMILIES:
        model = _model(family).eval()
        same = torch.allclose(model(*inputs), model(*flipped), atol=1e-5)
        assert same == (family not in SEQUENCE_FAMILIES), family
