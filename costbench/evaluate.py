"""Score a split with any callable model and turn the scores into the quality metrics of a record.

The callable is the model as served (fp32, autocast, int8, compiled), so the metrics describe what would
run in production, not the training-time weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from costbench import metrics
from costbench.data import PreparedData, Split
from costbench.spec import EvalConfig

Stage = Callable[[Split, Any], tuple[Any, ...]]  # rows of a split -> the serving runtime's inputs


def predict_proba(fn: Callable[..., Any], split: Split, batch_size: int, device: torch.device,
                  stage: Stage | None = None) -> np.ndarray:
    """Purchase probabilities for every row of ``split`` (see ``predict_logits``); the sigmoid is taken on
    float32 logits so a half-precision model's scores are not rounded a second time."""
    return torch.sigmoid(predict_logits(fn, split, batch_size, device, stage)).numpy().astype(np.float64)


def predict_logits(fn: Callable[..., Any], split: Split, batch_size: int, device: torch.device,
                   stage: Stage | None = None) -> torch.Tensor:
    """float32 logits (on the CPU) for every row of ``split``, batch by batch. ``stage`` turns rows into
    the serving runtime's inputs (default: the torch tensors on ``device``); ``fn`` may return a torch
    tensor or a numpy array."""
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(split), batch_size):
            rows = slice(start, start + batch_size)
            inputs = stage(split, rows) if stage else tuple(t.to(device, non_blocking=True)
                                                            for t in split.inputs(rows))
            chunks.append(torch.as_tensor(fn(*inputs)).float().cpu())
    return torch.cat(chunks)


def evaluate(fn: Callable[..., Any], data: PreparedData, cfg: EvalConfig, device: torch.device,
             stage: Stage | None = None) -> dict[str, float]:
    """Test-split quality; the F1-optimal threshold is chosen on validation, then applied to test. The
    bootstrap intervals say how much of an AUC difference between two trials is the test rows' noise."""
    val_y = data.val.label.numpy()
    test_y = data.test.label.numpy()
    threshold = metrics.f1_optimal_threshold(val_y, predict_proba(fn, data.val, cfg.batch_size, device, stage))
    proba = predict_proba(fn, data.test, cfg.batch_size, device, stage)
    return {
        "auc": metrics.roc_auc(test_y, proba),
        "pr_auc": metrics.average_precision(test_y, proba),
        "logloss": metrics.logloss(test_y, proba),
        "brier": metrics.brier(test_y, proba),
        **metrics.threshold_metrics(test_y, proba, threshold),
        "threshold": threshold,
        "capture_at_top": metrics.capture_at_top(test_y, proba, cfg.top_fraction),
        "lift_at_top": metrics.lift_at_top(test_y, proba, cfg.top_fraction),
        **metrics.bootstrap_intervals(test_y, proba, cfg.top_fraction),
    }
