"""Size presets per model family, and the check that a model can be built, without importing torch.

Kept apart from ``models.py`` so that ``costbench validate`` can reject an unbuildable size in
milliseconds, before any trial (or torch) starts.
"""

from __future__ import annotations

from typing import Any, Protocol

# family -> size -> (hidden, layers, emb_dim, heads). Sizes span roughly 10^3 .. 10^8 parameters on
# the default synthetic data (the README lists the exact counts); xl is meant for GPUs.
PRESETS: dict[str, dict[str, tuple[int, int, int, int]]] = {
    # logistic regression has no layers: its size is LOGREG_BINS below
    "logreg": {size: (0, 0, 1, 0) for size in ("xs", "s", "m", "l", "xl")},
    "mlp": {"xs": (16, 1, 4, 0), "s": (64, 2, 8, 0), "m": (256, 3, 16, 0), "l": (1024, 4, 32, 0),
            "xl": (4096, 6, 64, 0)},
    "dcn": {"xs": (16, 1, 4, 0), "s": (64, 2, 8, 0), "m": (256, 3, 16, 0), "l": (1024, 4, 32, 0),
            "xl": (4096, 6, 64, 0)},
    # sequence families embed every item id, so even xs holds n_items x emb_dim parameters (~10^4)
    "gru": {"xs": (16, 1, 2, 0), "s": (32, 1, 8, 0), "m": (128, 2, 32, 0), "l": (512, 2, 64, 0),
            "xl": (2048, 3, 128, 0)},
    "lstm": {"xs": (16, 1, 2, 0), "s": (32, 1, 8, 0), "m": (128, 2, 32, 0), "l": (512, 2, 64, 0),
             "xl": (2048, 3, 128, 0)},
    "transformer": {"xs": (16, 1, 4, 2), "s": (64, 1, 16, 2), "m": (256, 2, 64, 4), "l": (1024, 4, 256, 8),
                    "xl": (4096, 6, 768, 12)},
}
DEFAULT_DROPOUT = 0.1
# logreg's size: piecewise-linear bins per numeric column (a generalised additive model, still linear in
# its features and convex); xs is plain logistic regression on the prepared columns
LOGREG_BINS = {"xs": 0, "s": 4, "m": 8, "l": 16, "xl": 32}
LOGREG_L2 = 1.0  # 1/C of scikit-learn's LogisticRegression: penalty 0.5 * l2 * |w|^2 on the summed loss


class ModelSpec(Protocol):
    family: str
    size: str
    hidden: int | None
    layers: int | None
    emb_dim: int | None
    heads: int | None
    dropout: float | None
    num_embedding: str


def resolve_hparams(model: ModelSpec) -> dict[str, Any]:
    """The preset for family x size with explicit keys on top; ValueError when it cannot be built."""
    hidden, layers, emb_dim, heads = PRESETS[model.family][model.size]
    hp = {
        "family": model.family,
        "hidden": model.hidden or hidden,
        "layers": model.layers or layers,
        "emb_dim": model.emb_dim or emb_dim,
        "heads": model.heads or heads,
        "dropout": DEFAULT_DROPOUT if model.dropout is None else model.dropout,
        "num_embedding": getattr(model, "num_embedding", "auto"),
    }
    if hp["num_embedding"] == "auto":
        hp["num_embedding"] = "piecewise" if model.family in ("mlp", "dcn") else "none"
    if model.family == "logreg":
        set_keys = [k for k in ("hidden", "layers", "emb_dim", "heads", "dropout") if getattr(model, k) is not None]
        if set_keys or getattr(model, "num_embedding", "auto") not in ("auto", "none"):
            key = f"model.{set_keys[0]}" if set_keys else "model.num_embedding"
            raise ValueError(f"{key} does not apply to logreg (an L2-regularised logistic regression); its "
                             "model.size sets the piecewise-linear bins per numeric column (xs: none, s: 4, "
                             "m: 8, l: 16, xl: 32)")
        hp.update(dropout=0.0, bins=LOGREG_BINS[model.size], l2=LOGREG_L2)
    if model.family == "transformer" and hp["emb_dim"] % hp["heads"]:
        raise ValueError(
            f"transformer emb_dim {hp['emb_dim']} is not divisible by heads {hp['heads']}; "
            "pick heads that divide emb_dim"
        )
    return hp
