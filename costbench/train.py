"""The training loop: in-memory tensor batches, early stopping on validation AUC, best weights restored.

Batches are index gathers from tensors that already sit on the device (a fresh permutation each epoch),
not a per-sample DataLoader: for tabular rows the default collate costs more than the model step. The
precision policy plugs in through ``autocast`` and ``grad_scaler``; the loop itself knows no dtypes.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from costbench import metrics
from costbench.data import PreparedData
from costbench.evaluate import predict_proba
from costbench.spec import TrainConfig

FINITE_CHECK_EVERY = 16  # steps between loss checks: each check waits for the device, so not every step
VAL_BATCH_SIZE = 8192


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite; the trial fails with where it happened."""

    def __init__(self, epoch: int, step: int, value: float) -> None:
        self.epoch, self.step, self.value = epoch, step, value
        super().__init__(
            f"training loss became {value} at epoch {epoch}, step {step}; "
            "lower train.lr, set train.grad_clip, or train in fp32/bf16"
        )


@dataclass
class TrainResult:
    epochs_run: int
    best_epoch: int
    best_val_auc: float
    seconds: float  # wall-clock time of the whole call, validation included
    samples_per_s: float  # training rows per second of the optimisation steps alone
    stopped_reason: str  # "max_epochs", "early_stopping" or "time_budget"
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: loss, val AUC, lr, seconds


def seed_everything(seed: int) -> None:
    """Seed every generator a trial touches (Python, numpy, torch on all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def lr_factor(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Multiplier of the base lr at ``step`` (0-based): linear warm-up, then constant or cosine to zero."""
    warmup = int(cfg.warmup_fraction * total_steps)
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "cosine":
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def _check_finite(losses: Tensor, epoch: int, first_step: int) -> None:
    """Raise NonFiniteLoss naming the first bad step among ``losses`` (steps first_step, first_step+1, ...)."""
    bad = ~torch.isfinite(losses)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise NonFiniteLoss(epoch, first_step + i, float(losses[i]))


def validation_auc(model: nn.Module, data: PreparedData, autocast: Callable[[], AbstractContextManager],
                   device: torch.device) -> float:
    """AUC on the validation split, scored the way the model trains (same autocast)."""
    model.eval()

    def scored(*inputs: Tensor) -> Tensor:
        with autocast():
            return model(*inputs)

    proba = predict_proba(scored, data.val, VAL_BATCH_SIZE, device)
    return metrics.roc_auc(data.val.label.numpy(), proba)


def train_model(
    model: nn.Module,
    data: PreparedData,
    cfg: TrainConfig,
    *,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager],
    grad_scaler: torch.amp.GradScaler | None,
    on_epoch: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place and leave it (in eval mode) holding its best-on-validation weights.

    ``on_epoch(epoch, epochs)`` is called as each epoch starts. Raises NonFiniteLoss on a NaN/inf loss.
    """
    started = time.perf_counter()
    deadline = started + cfg.max_minutes * 60 if cfg.max_minutes else math.inf
    model.to(device)
    tensors = tuple(t.to(device) for t in (*data.train.inputs(), data.train.label))
    n, bs = len(data.train), cfg.batch_size
    steps_per_epoch = math.ceil(n / bs)
    optimizer = make_optimizer(model, cfg)
    scheduler = None
    if cfg.schedule != "constant" or cfg.warmup_fraction > 0:
        total = steps_per_epoch * cfg.epochs
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total, cfg))
    pos_weight = None if data.pos_weight is None else torch.tensor(data.pos_weight, device=device)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)

    best_auc, best_epoch, best_state = -math.inf, 0, None
    history: list[dict[str, float]] = []
    stopped, step_seconds, samples, epoch = "max_epochs", 0.0, 0, 0
    for epoch in range(1, cfg.epochs + 1):
        if on_epoch is not None:
            on_epoch(epoch, cfg.epochs)
        model.train()
        epoch_start = time.perf_counter()
        losses = torch.empty(steps_per_epoch, device=device)
        order = torch.randperm(n, device=device)
        checked = done = 0
        for step in range(steps_per_epoch):
            *inputs, label = (t[order[step * bs:(step + 1) * bs]] for t in tensors)
            with autocast():
                logits = model(*inputs)
            loss = loss_fn(logits.float(), label)
            optimizer.zero_grad(set_to_none=True)
            if grad_scaler is None:
                loss.backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
            else:
                grad_scaler.scale(loss).backward()
                if cfg.grad_clip:
                    grad_scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                grad_scaler.step(optimizer)
                grad_scaler.update()
            if scheduler is not None:
                scheduler.step()
            losses[step] = loss.detach()
            done = step + 1
            samples += label.shape[0]
            if done - checked == FINITE_CHECK_EVERY:
                _check_finite(losses[checked:done], epoch, checked + 1)
                checked = done
            if time.perf_counter() > deadline:
                stopped = "time_budget"
                break
        _check_finite(losses[checked:done], epoch, checked + 1)  # also waits for the device to finish
        step_seconds += time.perf_counter() - epoch_start

        val_auc = validation_auc(model, data, autocast, device)
        history.append({"epoch": epoch, "train_loss": float(losses[:done].mean()), "val_auc": val_auc,
                        "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started})
        if val_auc > best_auc:
            best_auc, best_epoch = val_auc, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if stopped == "time_budget":
            break
        if cfg.patience is not None and epoch - best_epoch >= cfg.patience:
            stopped = "early_stopping"
            break
        if epoch < cfg.epochs and time.perf_counter() > deadline:
            stopped = "time_budget"
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        epochs_run=epoch,
        best_epoch=best_epoch,
        best_val_auc=best_auc,
        seconds=time.perf_counter() - started,
        samples_per_s=samples / step_seconds if step_seconds > 0 else 0.0,
        stopped_reason=stopped,
        history=history,
    )
