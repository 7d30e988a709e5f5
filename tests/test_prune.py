"""Structured pruning really shrinks the layers, keeps what matters, and says when it cannot apply."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from costbench.compress.prune import prune_to_widths, structured_prune
from costbench.data import Schema
from costbench.errors import TrialSkipped
from costbench.model_presets import resolve_hparams
from costbench.models import build_model, count_params
from costbench.spec import ModelConfig

SCHEMA = Schema(numeric_names=["a", "b", "c"], categorical_names=["x", "y"], cardinalities=[7, 5],
                sequence_length=6, n_items=50, n_item_categories=9)


def inputs(n: int = 512, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3, generator=g),
            torch.stack([torch.randint(0, 7, (n,), generator=g), torch.randint(0, 5, (n,), generator=g)], 1),
            torch.randint(0, 50, (n, 6), generator=g), torch.randint(0, 9, (n, 6), generator=g))


def net(size: str = "s", family: str = "mlp", **overrides: object) -> tuple[nn.Module, dict]:
    torch.manual_seed(0)
    hparams = resolve_hparams(ModelConfig(family=family, size=size, **overrides))
    return build_model(hparams, SCHEMA).eval(), hparams


@torch.no_grad()
def silence_half(model: nn.Module) -> None:
    """Zero the second half of every hidden layer's units and of every embedding block's dims, so their
    activations are exactly 0: removing them must leave the model's output unchanged."""
    for layer in [m for m in model.tower if isinstance(m, nn.Linear)]:
        layer.weight[layer.out_features // 2:] = 0
        layer.bias[layer.out_features // 2:] = 0
    for emb in [*model.features.embeddings, model.features.bag]:
        emb.weight[:, emb.embedding_dim // 2:] = 0
    linear = getattr(model.features.numeric, "linear", None)  # none: raw numeric inputs, never pruned
    if linear is not None:
        width = linear.weight.shape[-1]
        linear.weight[..., width // 2:] = 0
        linear.bias[..., width // 2:] = 0


@pytest.mark.parametrize("family", ["mlp", "dcn"])
@pytest.mark.parametrize("num_embedding", ["piecewise", "periodic", "none"])
def test_removing_silent_units_keeps_every_output(family: str, num_embedding: str) -> None:
    """In a DCN a silenced feature dimension is 0 through every cross layer too (x0 * (W x + b) + x)."""
    model, hparams = net("s", family, num_embedding=num_embedding)
    silence_half(model)
    # compared on the calibration rows: a unit that never fires there ties with a silenced one and may be
    # dropped instead, which changes nothing on these rows (elsewhere it may)
    x = inputs()
    pruned = prune_to_widths(model, hparams, SCHEMA, hparams["hidden"] // 2, hparams["emb_dim"] // 2, x)
    assert [m.out_features for m in pruned.tower if isinstance(m, nn.Linear)] == [hparams["hidden"] // 2] * 2
    with torch.no_grad():
        torch.testing.assert_close(pruned.eval()(*x), model(*x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["mlp", "dcn"])
def test_half_the_parameters_go_and_the_layers_really_shrink(family: str) -> None:
    model, hparams = net("m", family)
    result = structured_prune(model, hparams, SCHEMA, 0.5, inputs())
    assert result.params_before == count_params(model)
    assert 0.42 * result.params_before <= result.params_after <= 0.5 * result.params_before
    assert result.hparams["hidden"] < hparams["hidden"] and result.hparams["emb_dim"] < hparams["emb_dim"]
    widths = [m.out_features for m in result.model.tower if isinstance(m, nn.Linear)]
    assert widths == [result.hparams["hidden"]] * hparams["layers"]
    assert all(e.embedding_dim == result.hparams["emb_dim"] for e in result.model.features.embeddings)
    scratch = build_model(result.hparams, SCHEMA)  # the same-shape twin a sweep trains from scratch
    assert count_params(scratch) == result.params_after
    assert result.model(*inputs(8)).shape == (8,)


@pytest.mark.parametrize("family", ["mlp", "dcn"])
def test_pruning_keeps_the_units_that_matter(family: str) -> None:
    """Against random removal of the same number of units, the criterion loses less of the output."""
    model, hparams = net("s", family)
    x, held_out = inputs(), inputs(seed=1)
    with torch.no_grad():
        reference = model(*held_out)
        pruned = prune_to_widths(model, hparams, SCHEMA, hparams["hidden"] // 2, hparams["emb_dim"], x).eval()
        kept_error = (pruned(*held_out) - reference).abs().mean()
        layer = model.tower[0]
        generator = torch.Generator().manual_seed(3)
        random_errors = []
        for _ in range(5):
            drop = torch.randperm(layer.out_features, generator=generator)[: layer.out_features // 2]
            saved = layer.weight.clone(), layer.bias.clone()
            layer.weight[drop] = 0
            layer.bias[drop] = 0
            random_errors.append((model(*held_out) - reference).abs().mean())
            layer.weight.copy_(saved[0])
            layer.bias.copy_(saved[1])
    assert kept_error < min(random_errors) * 2  # halves every layer, yet close to one random half-layer


@pytest.mark.parametrize("family", ["gru", "transformer", "logreg"])
def test_unsupported_families_are_a_skip_with_the_reason(family: str) -> None:
    hparams = resolve_hparams(ModelConfig(family=family, size="xs"))
    model = build_model(hparams, SCHEMA)
    with pytest.raises(TrialSkipped, match="structured pruning is implemented for mlp, dcn"):
        structured_prune(model, hparams, SCHEMA, 0.5, inputs())


def test_amount_out_of_range_is_refused() -> None:
    model, hparams = net("xs")
    with pytest.raises(ValueError, match=r"prune amount must be in \(0, 1\)"):
        structured_prune(model, hparams, SCHEMA, 1.0, inputs())
