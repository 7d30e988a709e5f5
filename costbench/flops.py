"""FLOPs of one row through a network's forward pass, counted from its layers' shapes.

Counted: 2 x the multiply-adds of the matrix products that carry the weights: every ``nn.Linear``
(in x out) and the numeric embedding's per-column maps (``PerColumnLinear``: columns x d_in x d_out, the
useful products; the zeros of the block-diagonal form the ONNX export runs are not counted, so every
runtime of one model is measured against the same work). Not counted: embedding lookups, the bag mean,
the piecewise bins, activations, biases. A model holding layers whose products are not counted here
(recurrent cells, attention) has no count (None): an achieved GFLOP/s from a partial count would flatter it.
"""

from __future__ import annotations

from torch import nn

from costbench.num_embeddings import PerColumnLinear

UNCOUNTED = (nn.RNNBase, nn.MultiheadAttention, nn.TransformerEncoderLayer)


def forward_flops(model: nn.Module) -> int | None:
    """FLOPs per row of ``model``'s forward (see the module doc for what is counted), or None."""
    if any(isinstance(m, UNCOUNTED) for m in model.modules()):
        return None
    macs = 0
    for module in model.modules():
        if isinstance(module, nn.Linear):
            macs += module.in_features * module.out_features
        elif isinstance(module, PerColumnLinear):
            macs += module.weight.numel()  # columns x d_in x d_out
    return 2 * macs
