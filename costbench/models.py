"""The purchase-prediction model families, built from a size preset and the data's schema.

Every model takes the same four tensors, ``(numeric, categorical, items, item_categories)``, and returns
one logit per row, so training, serving and quantization treat all families alike. The tabular families
(logreg, mlp, dcn) see the session as a bag of viewed categories (mean-pooled embeddings, the classic
"average of the history" feature); the sequence families (gru, lstm, transformer) read the viewed items
and categories in order.

Initialisation: category embeddings start small (N(0, 0.1^2)), not at N(0, 1), so they do not drown the
scaled numeric columns; the output bias is set by ``set_output_bias`` to the training log-odds before
training, so the first steps learn the ranking rather than the base rate. ``logreg`` is a true
L2-regularised logistic regression: zero-initialised weights over the numeric columns (optionally their
piecewise-linear bins) and one-hot categoricals (a 1-wide embedding is a one-hot weight), with the
penalty ``l2_penalty`` added to the loss by the training loop.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from costbench.data import Schema
from costbench.num_embeddings import make_numeric_embedding, piecewise_linear

SEQUENCE_FAMILIES = ("gru", "lstm", "transformer")
EMBEDDING_STD = 0.1


def count_params(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(hparams: dict[str, Any], schema: Schema) -> nn.Module:
    """The model for ``hparams`` (from ``model_presets.resolve_hparams``) on data shaped like ``schema``."""
    family = hparams["family"]
    if family in SEQUENCE_FAMILIES and schema.sequence_length == 0:
        raise ValueError(f"model family '{family}' reads the session sequence, but the data has none")
    if family in ("gru", "lstm"):
        return SequenceModel(hparams, schema, RecurrentEncoder(hparams))
    if family == "transformer":
        return SequenceModel(hparams, schema, AttentionEncoder(hparams, schema.sequence_length))
    tabular = {"logreg": LogReg, "mlp": MLP, "dcn": DCN}
    if family not in tabular:
        raise ValueError(f"unknown model family '{family}'")
    return tabular[family](hparams, schema)


def set_output_bias(model: nn.Module, log_odds: float) -> bool:
    """Start the model at the base rate: its output layer's bias = the training log-odds. False when the
    model has no ``out`` linear layer (a family from elsewhere)."""
    out = getattr(model, "out", None)
    if not isinstance(out, nn.Linear) or out.bias is None:
        return False
    with torch.no_grad():
        out.bias.fill_(log_odds)
    return True


def _small_embedding(n: int, dim: int, padding_idx: int | None = None) -> nn.Embedding:
    emb = nn.Embedding(n, dim, padding_idx=padding_idx)
    nn.init.normal_(emb.weight, std=EMBEDDING_STD)
    if padding_idx is not None:
        with torch.no_grad():
            emb.weight[padding_idx].zero_()
    return emb


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean over the sequence axis of ``values`` [n, L, d] where ``mask`` [n, L] is true; 0 when empty."""
    weights = mask.unsqueeze(-1).to(values.dtype)
    return (values * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def _bag_mean(bag: nn.Embedding, ids: Tensor) -> Tensor:
    """``_masked_mean(bag(ids), ids != 0)``, the mean embedding of the viewed ids (0 = padding)."""
    if not torch.onnx.is_in_onnx_export():
        return _masked_mean(bag(ids), ids != 0)  # the module call, which torchao's int8 embedding replaces
    # exported, the same function in ops ONNX Runtime runs fast: padding reads a zero row of the table (rather
    # than the [n, L, d] gather times an [n, L, 1] mask: a product with 0/1 is exact either way), and the sum
    # over the L positions is one product with L stacked identities (ReduceSum over a middle axis is slow)
    table = torch.cat([bag.weight.new_zeros(1, bag.weight.shape[1]), bag.weight[1:]])
    length, dim = int(ids.shape[1]), int(table.shape[1])  # fixed by the graph's input shape: constants
    stacked = torch.eye(dim, dtype=table.dtype, device=table.device).repeat(length, 1)
    count = (ids != 0).sum(1, keepdim=True).to(table.dtype).clamp(min=1.0)
    return nn.functional.embedding(ids, table).reshape(-1, length * dim) @ stacked / count


def mlp_layers(in_dim: int, hidden: int, layers: int, dropout: float) -> tuple[nn.Sequential, int]:
    """``layers`` blocks of Linear -> ReLU -> Dropout; returns them and their output width."""
    blocks: list[nn.Module] = []
    for i in range(layers):
        blocks += [nn.Linear(in_dim if i == 0 else hidden, hidden), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*blocks), hidden if layers else in_dim


class TabularFeatures(nn.Module):
    """Numeric columns, one embedding per categorical column and, when the data has sessions, the mean
    embedding of the viewed categories, concatenated into one vector per row."""

    def __init__(self, schema: Schema, emb_dim: int, with_bag: bool, num_embedding: str = "none") -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(_small_embedding(card, emb_dim) for card in schema.cardinalities)
        self.bag = (_small_embedding(schema.n_item_categories, emb_dim, padding_idx=0)
                    if with_bag and schema.sequence_length > 0 else None)
        self.numeric = make_numeric_embedding(num_embedding, schema, emb_dim)
        self.out_dim = self.numeric.out_dim + emb_dim * (len(self.embeddings) + (self.bag is not None))

    def forward(self, numeric: Tensor, categorical: Tensor, item_categories: Tensor) -> Tensor:
        parts = [self.numeric(numeric)] + [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        if self.bag is not None:
            parts.append(_bag_mean(self.bag, item_categories))
        return torch.cat(parts, dim=1)


class LogReg(nn.Module):
    """L2-regularised logistic regression over the numeric columns (plus ``bins`` piecewise-linear bins of
    each when bins > 0), one-hot categoricals and, with sessions, the shares of viewed categories."""

    def __init__(self, hp: dict[str, Any], schema: Schema) -> None:
        super().__init__()
        self.l2 = float(hp.get("l2", 1.0))
        self.bins = piecewise_linear(schema, hp.get("bins", 0)) if hp.get("bins", 0) else None
        width = schema.n_numeric + (self.bins.out_dim if self.bins is not None else 0)
        self.out = nn.Linear(width, 1)
        # one weight per level, plain tensors rather than 1-wide nn.Embedding (int8 has no kernel for those)
        self.onehot = nn.ParameterList(nn.Parameter(torch.zeros(card)) for card in schema.cardinalities)
        self.bag = nn.Parameter(torch.zeros(schema.n_item_categories)) if schema.sequence_length > 0 else None
        nn.init.zeros_(self.out.weight)

    def l2_penalty(self) -> Tensor:
        """0.5 * l2 * |w|^2 over every weight but the bias (scikit-learn's penalty at C = 1 / l2)."""
        weights = [self.out.weight, *self.onehot] + ([self.bag] if self.bag is not None else [])
        return 0.5 * self.l2 * sum((w.float() ** 2).sum() for w in weights)

    def forward(self, numeric: Tensor, categorical: Tensor, items: Tensor, item_categories: Tensor) -> Tensor:
        x = numeric if self.bins is None else torch.cat([numeric, self.bins(numeric)], dim=1)
        logit = self.out(x).squeeze(-1)
        for i, weight in enumerate(self.onehot):
            logit = logit + weight[categorical[:, i]]
        if self.bag is not None:
            # the mean weight of the viewed categories (padding id 0 carries none), in [n, L] ops only: the
            # [n, L, 1] form of _masked_mean runs several times slower on ONNX Runtime
            viewed = (item_categories != 0).to(self.bag.dtype)
            logit = logit + (self.bag[item_categories] * viewed).sum(1) / viewed.sum(1).clamp(min=1.0)
        return logit


class MLP(nn.Module):
    """Embeddings and numeric features through a stack of ReLU layers."""

    def __init__(self, hp: dict[str, Any], schema: Schema) -> None:
        super().__init__()
        self.features = TabularFeatures(schema, hp["emb_dim"], with_bag=True,
                                        num_embedding=hp.get("num_embedding", "none"))
        self.tower, width = mlp_layers(self.features.out_dim, hp["hidden"], hp["layers"], hp["dropout"])
        self.out = nn.Linear(width, 1)

    def forward(self, numeric: Tensor, categorical: Tensor, items: Tensor, item_categories: Tensor) -> Tensor:
        return self.out(self.tower(self.features(numeric, categorical, item_categories))).squeeze(-1)


class CrossLayer(nn.Module):
    """DCN-v2 cross layer: x_{l+1} = x_0 * (W x_l + b) + x_l, an explicit feature interaction per layer."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, x0: Tensor, x: Tensor) -> Tensor:
        return x0 * self.linear(x) + x


class DCN(nn.Module):
    """Deep & Cross Network v2, parallel form: ``layers`` cross layers beside a deep tower of the same
    depth, their outputs concatenated into the logit."""

    def __init__(self, hp: dict[str, Any], schema: Schema) -> None:
        super().__init__()
        self.features = TabularFeatures(schema, hp["emb_dim"], with_bag=True,
                                        num_embedding=hp.get("num_embedding", "none"))
        dim = self.features.out_dim
        self.cross = nn.ModuleList(CrossLayer(dim) for _ in range(hp["layers"]))
        self.tower, width = mlp_layers(dim, hp["hidden"], hp["layers"], hp["dropout"])
        self.out = nn.Linear(dim + width, 1)

    def forward(self, numeric: Tensor, categorical: Tensor, items: Tensor, item_categories: Tensor) -> Tensor:
        x0 = self.features(numeric, categorical, item_categories)
        x = x0
        for layer in self.cross:
            x = layer(x0, x)
        return self.out(torch.cat([x, self.tower(x0)], dim=1)).squeeze(-1)


class SequenceModel(nn.Module):
    """The sequence families' frame: tokens are item + category embeddings; ``encoder`` turns the session
    into one vector, which joins the tabular features in a two-layer head."""

    def __init__(self, hp: dict[str, Any], schema: Schema, encoder: nn.Module) -> None:
        super().__init__()
        self.features = TabularFeatures(schema, hp["emb_dim"], with_bag=False,
                                        num_embedding=hp.get("num_embedding", "none"))
        self.item_emb = _small_embedding(schema.n_items, hp["emb_dim"], padding_idx=0)
        self.category_emb = _small_embedding(schema.n_item_categories, hp["emb_dim"], padding_idx=0)
        self.encoder = encoder
        in_dim = self.features.out_dim + encoder.out_dim
        self.head, width = mlp_layers(in_dim, hp["hidden"], 2, hp["dropout"])
        self.out = nn.Linear(width, 1)

    def forward(self, numeric: Tensor, categorical: Tensor, items: Tensor, item_categories: Tensor) -> Tensor:
        tokens = self.item_emb(items) + self.category_emb(item_categories)
        session = self.encoder(tokens, items != 0)
        joined = torch.cat([self.features(numeric, categorical, item_categories), session], dim=1)
        return self.out(self.head(joined)).squeeze(-1)


class RecurrentEncoder(nn.Module):
    """GRU or LSTM over the session in order; the session vector is the mean of its outputs over the
    viewed (non-padding) positions, which works for left- and right-padded sequences alike."""

    def __init__(self, hp: dict[str, Any]) -> None:
        super().__init__()
        rnn = nn.GRU if hp["family"] == "gru" else nn.LSTM
        self.rnn = rnn(hp["emb_dim"], hp["hidden"], num_layers=hp["layers"], batch_first=True,
                       dropout=hp["dropout"] if hp["layers"] > 1 else 0.0)
        self.out_dim = hp["hidden"]

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        outputs, _ = self.rnn(tokens)
        return _masked_mean(outputs, mask)


class AttentionEncoder(nn.Module):
    """Pre-norm Transformer encoder with learned positions; the session vector is the output of a learned
    summary token, which is never masked, so an empty session stays finite."""

    def __init__(self, hp: dict[str, Any], sequence_length: int) -> None:
        super().__init__()
        d_model = hp["emb_dim"]
        self.summary = nn.Parameter(torch.zeros(1, 1, d_model))
        self.positions = nn.Parameter(torch.zeros(1, sequence_length + 1, d_model))
        nn.init.normal_(self.positions, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, hp["heads"], dim_feedforward=hp["hidden"],
                                           dropout=hp["dropout"], batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, hp["layers"], enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.out_dim = d_model

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        n, length = mask.shape
        x = torch.cat([self.summary.expand(n, -1, -1), tokens], dim=1) + self.positions[:, : length + 1]
        padding = torch.cat([mask.new_zeros(n, 1), ~mask], dim=1)
        return self.norm(self.encoder(x, src_key_padding_mask=padding)[:, 0])
