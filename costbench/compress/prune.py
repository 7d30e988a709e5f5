"""Structured pruning: remove whole hidden units and embedding dimensions, physically shrinking the layers.

Masking weights (``torch.nn.utils.prune``) leaves every matrix its full size, so it changes no latency;
only a narrower model serves faster. A pruned model here is therefore a freshly built model of the
narrower shape (``build_model`` with smaller ``hidden`` and ``emb_dim``) holding the kept weights, so it
is exactly the architecture a from-scratch model of that shape has, and every precision and runtime
serves it unchanged.

Which units survive (``CRITERION``): each unit's importance is its mean absolute activation on
calibration rows from the training split times the L2 norm of the weights that read it in the next
layer, i.e. how much it moves the next layer's input. Every hidden layer keeps its most important units;
every embedding block (each categorical column, the viewed-categories bag, each numeric column's
embedding) keeps its most important dimensions, so all blocks keep the same width, as ``emb_dim`` says.

``amount`` is the share of the model's parameters to remove: the kept widths are the largest ones whose
parameter count is at most ``(1 - amount)`` of the original.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from costbench.data import Schema
from costbench.errors import TrialSkipped
from costbench.models import DCN, MLP, build_model, count_params
from costbench.num_embeddings import Identity

PRUNABLE_FAMILIES = ("mlp", "dcn")
CRITERION = ("mean |activation| on training rows x L2 norm of the weights reading it (the next layer; in dcn "
             "also every cross layer and the logit's cross half); top units per hidden layer, top dimensions "
             "per embedding block")


@dataclass
class PruneResult:
    """The pruned model and what the record says about it."""

    model: nn.Module
    hparams: dict[str, Any]  # the pruned shape: a model built from these is the same-shape scratch twin
    params_before: int
    params_after: int
    criterion: str


def structured_prune(model: nn.Module, hparams: dict[str, Any], schema: Schema, amount: float,
                     calibration: Sequence[Tensor]) -> PruneResult:
    """Remove about ``amount`` of ``model``'s parameters as whole units; ``calibration`` holds the model's
    inputs for some training rows (``Split.inputs``), on which activations are measured."""
    if hparams["family"] not in PRUNABLE_FAMILIES:
        raise TrialSkipped(f"structured pruning is implemented for {', '.join(PRUNABLE_FAMILIES)}; "
                           f"'{hparams['family']}' is not supported (its sequence encoder, or a linear model's "
                           "inputs, have no unit-removal rule here)")
    if not 0 < amount < 1:
        raise ValueError(f"prune amount must be in (0, 1), got {amount}")
    hidden, emb_dim = widths_for_amount(hparams, schema, amount)
    pruned = prune_to_widths(model, hparams, schema, hidden, emb_dim, calibration)
    return PruneResult(model=pruned, hparams={**hparams, "hidden": hidden, "emb_dim": emb_dim},
                       params_before=count_params(model), params_after=count_params(pruned), criterion=CRITERION)


def widths_for_amount(hparams: dict[str, Any], schema: Schema, amount: float) -> tuple[int, int]:
    """The widest ``(hidden, emb_dim)``, shrunk by one common factor, with at most ``(1 - amount)`` of
    the parameters (at least one unit each)."""
    def shape(keep_hidden: int) -> tuple[int, int]:
        return keep_hidden, max(1, round(hparams["emb_dim"] * keep_hidden / hparams["hidden"]))

    budget = (1 - amount) * _params_of(hparams, schema)
    low, high = 1, hparams["hidden"] - 1  # the answer is the largest keep_hidden within budget
    while low < high:
        middle = (low + high + 1) // 2
        hidden, emb_dim = shape(middle)
        if _params_of({**hparams, "hidden": hidden, "emb_dim": emb_dim}, schema) <= budget:
            low = middle
        else:
            high = middle - 1
    return shape(low)


def _params_of(hparams: dict[str, Any], schema: Schema) -> int:
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost for the large presets
        return count_params(build_model(hparams, schema))


@torch.no_grad()
def prune_to_widths(model: nn.Module, hparams: dict[str, Any], schema: Schema, hidden: int, emb_dim: int,
                    calibration: Sequence[Tensor]) -> nn.Module:
    """``model`` (an MLP or a DCN) narrowed to ``hidden`` units per layer and ``emb_dim`` per embedding block.

    In a DCN every cross layer maps the feature vector to itself elementwise (``x0 * (W x + b) + x``), so a
    removed feature dimension is removed from all of them alike: each keeps ``W[kept][:, kept]``."""
    if not isinstance(model, (MLP, DCN)):
        raise TrialSkipped(f"structured pruning needs an mlp or a dcn, got {type(model).__name__}")
    was_training = model.training
    model.eval()
    activations = _record_activations(model, calibration)
    model.train(was_training)
    linears = [m for m in model.tower if isinstance(m, nn.Linear)]
    cross = [layer.linear for layer in model.cross] if isinstance(model, DCN) else []
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    # a DCN's logit reads [the cross layers' output, the tower's]; an MLP's the tower's alone
    width = model.features.out_dim if cross else 0
    out_cross, out_tower = model.out.weight[:, :width], model.out.weight[:, width:]

    features = model.features
    readers = torch.cat([linears[0].weight, *(c.weight for c in cross), *([out_cross] if cross else [])])
    block_dims = _embedding_blocks(features, activations["features"], readers, emb_dim)
    kept_features = torch.cat([offset + dims for offset, dims in block_dims["columns"]])
    for name, dims in block_dims["tables"].items():
        state[name] = state[name][:, dims]
    if block_dims["numeric"] is not None:
        weight, bias = block_dims["numeric"]
        state["features.numeric.linear.weight"], state["features.numeric.linear.bias"] = weight, bias

    for i, layer in enumerate(cross):
        state[f"cross.{i}.linear.weight"] = layer.weight[kept_features][:, kept_features]
        state[f"cross.{i}.linear.bias"] = layer.bias[kept_features]

    kept_inputs = kept_features
    next_readers = [layer.weight for layer in linears[1:]] + [out_tower]
    for i, layer in enumerate(linears):
        importance = activations[f"tower.{i}"].abs().mean(0) * next_readers[i].norm(dim=0)
        kept_units = importance.topk(hidden).indices.sort().values
        prefix = _state_prefix(model, layer)
        state[f"{prefix}.weight"] = layer.weight[kept_units][:, kept_inputs]
        state[f"{prefix}.bias"] = layer.bias[kept_units]
        kept_inputs = kept_units
    state["out.weight"] = torch.cat([out_cross[:, kept_features], out_tower[:, kept_inputs]], dim=1) if cross \
        else out_tower[:, kept_inputs]

    pruned = build_model({**hparams, "hidden": hidden, "emb_dim": emb_dim}, schema)
    pruned.load_state_dict(state)  # strict: every shape must be exactly the narrower model's
    return pruned.to(next(model.parameters()).device).train(was_training)


def _record_activations(model: MLP | DCN, calibration: Sequence[Tensor]) -> dict[str, Tensor]:
    """The feature vector and every hidden layer's post-ReLU output on the calibration rows."""
    seen: dict[str, Tensor] = {}
    hooks = [model.features.register_forward_hook(lambda _m, _i, out: seen.__setitem__("features", out))]
    relus = [m for m in model.tower if isinstance(m, nn.ReLU)]
    for i, relu in enumerate(relus):
        hooks.append(relu.register_forward_hook(lambda _m, _i, out, i=i: seen.__setitem__(f"tower.{i}", out)))
    try:
        model(*calibration)
    finally:
        for hook in hooks:
            hook.remove()
    return {name: value.float() for name, value in seen.items()}


def _state_prefix(model: nn.Module, layer: nn.Module) -> str:
    return next(name for name, module in model.named_modules() if module is layer)


def _top_dims(block: Tensor, reader: Tensor, keep: int) -> Tensor:
    """The ``keep`` most important of a block's dims: ``block`` [rows, dims] activations, ``reader``
    [out, dims] the next layer's weights on them."""
    return (block.abs().mean(0) * reader.norm(dim=0)).topk(keep).indices.sort().values


def _embedding_blocks(features: nn.Module, x0: Tensor, first: Tensor, keep: int) -> dict[str, Any]:
    """Per embedding block, the kept dims: ``columns`` as (offset in the feature vector, kept dims) in
    feature order, ``tables`` the embedding weights to slice, ``numeric`` the sliced per-column linear."""
    columns: list[tuple[int, Tensor]] = []

    def block(offset: int, width: int) -> Tensor:
        dims = _top_dims(x0[:, offset:offset + width], first[:, offset:offset + width], keep)
        columns.append((offset, dims))
        return dims

    numeric = None
    if isinstance(features.numeric, Identity):  # raw numeric columns: inputs, not units, never pruned
        columns.append((0, torch.arange(features.numeric.out_dim)))
        offset = features.numeric.out_dim
    else:  # one embedding block per numeric column, from its own slice of the per-column linear
        linear = features.numeric.linear
        n_columns, d_in, width = linear.weight.shape
        index = torch.stack([block(c * width, width) for c in range(n_columns)])  # [columns, keep]
        weight = torch.gather(linear.weight, 2, index.unsqueeze(1).expand(-1, d_in, -1))
        numeric = (weight, torch.gather(linear.bias, 1, index))
        offset = n_columns * width
    named = [(f"features.embeddings.{i}.weight", emb) for i, emb in enumerate(features.embeddings)]
    if features.bag is not None:
        named.append(("features.bag.weight", features.bag))
    tables = {}
    for name, emb in named:
        tables[name] = block(offset, emb.embedding_dim)
        offset += emb.embedding_dim
    if offset != x0.shape[1]:
        raise AssertionError(f"feature layout {offset} wide, the model's is {x0.shape[1]}")
    return {"columns": columns, "tables": tables, "numeric": numeric}
