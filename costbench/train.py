"""The training loop: in-memory tensor batches, validation every few steps, early stopping on validation
AUC, best weights restored. The budget (batch size, lr, epoch cap, validation cadence) comes from
``budget.resolve_budget``; the output bias starts at the training log-odds (``models.set_output_bias``).

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
from costbench.budget import resolve_budget
from costbench.compress.distill import SoftTargets
from costbench.data import PreparedData
from costbench.evaluate import predict_proba
from costbench.models import count_params, set_output_bias
from costbench.spec import TrainConfig

FINITE_CHECK_EVERY = 16  # steps between loss checks: each check waits for the device, so not every step
VAL_BATCH_SIZE = 8192  # eval.batch_size's default; trial.py passes the sweep's own
PARAMS_PER_ROW_WARN = 10


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
    history: list[dict[str, float]] = field(default_factory=list)  # per validation: loss, val AUC, lr, seconds
    steps_run: int = 0
    best_step: int = 0
    # the resolved budget (see budget.py): what ran, whether the user set it or it was chosen
    batch_size: int = 0
    lr: float = 0.0
    max_epochs: int = 0
    steps_per_epoch: int = 0
    val_every: int = 0
    patience: int | None = None
    min_steps: int = 0
    weight_decay: float = 0.0
    automatic: list[str] = field(default_factory=list)
    output_bias: float | None = None  # the training log-odds the output bias started at
    warnings: list[str] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Seed every generator a trial touches (Python, numpy, torch on all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(model: nn.Module, cfg: TrainConfig, lr: float | None = None) -> torch.optim.Optimizer:
    """The optimizer; a model with its own ``l2_penalty`` (logreg) gets no decoupled weight decay on top."""
    params = [p for p in model.parameters() if p.requires_grad]
    lr = lr if lr is not None else (cfg.lr or 2e-3)
    wd = 0.0 if hasattr(model, "l2_penalty") else cfg.weight_decay
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=wd)


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
                   device: torch.device, batch_size: int = VAL_BATCH_SIZE) -> float:
    """AUC on the validation split, scored the way the model trains (same autocast)."""
    model.eval()

    def scored(*inputs: Tensor) -> Tensor:
        with autocast():
            return model(*inputs)

    proba = predict_proba(scored, data.val, batch_size, device)
    return metrics.roc_auc(data.val.label.numpy(), proba)


def train_log_odds(data: PreparedData) -> float:
    """log(p / (1 - p)) of the training labels, weighted as the loss weighs them (class_weight)."""
    p = float(data.train.label.mean())
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p)) + (math.log(data.pos_weight) if data.pos_weight else 0.0)


class BestState:
    """The best validation AUC so far, where it happened, and a copy of the weights that reached it."""

    def __init__(self) -> None:
        self.auc, self.epoch, self.step, self.state = -math.inf, 0, 0, None
        self.stale = 0  # validations since the best one

    def offer(self, auc: float, epoch: int, step: int, model: nn.Module) -> None:
        if auc > self.auc:
            self.auc, self.epoch, self.step, self.stale = auc, epoch, step, 0
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.stale += 1

    def restore(self, model: nn.Module) -> None:
        if self.state is not None:
            model.load_state_dict(self.state)


def make_step(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
              loss_fn: nn.Module, autocast: Callable[[], AbstractContextManager], cfg: TrainConfig,
              n_train: int, scheduler: torch.optim.lr_scheduler.LRScheduler | None) -> Callable[..., Tensor]:
    """One optimisation step on a batch; returns the batch's data loss (without the L2 penalty).
    ``targets`` are ``loss_fn``'s arguments after the logits: the label, or distillation's soft targets."""
    penalty = getattr(model, "l2_penalty", None)

    def step(inputs: tuple[Tensor, ...], targets: tuple[Tensor, ...]) -> Tensor:
        with autocast():
            logits = model(*inputs)
        loss = loss_fn(logits.float(), *targets)
        total = loss + penalty() / n_train if penalty is not None else loss
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        if cfg.grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            scheduler.step()
        return loss.detach()

    return step


def train_model(
    model: nn.Module,
    data: PreparedData,
    cfg: TrainConfig,
    *,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager],
    grad_scaler: torch.amp.GradScaler | None,
    on_epoch: Callable[[int, int], None] | None = None,
    val_batch_size: int = VAL_BATCH_SIZE,
    soft_targets: SoftTargets | None = None,
    init_output_bias: bool = True,
) -> TrainResult:
    """Train ``model`` in place and leave it (in eval mode) holding its best-on-validation weights.

    ``on_epoch(epoch, max_epochs)`` is called as each epoch starts. Raises NonFiniteLoss on a NaN/inf loss.
    With ``soft_targets`` the loss is distillation's (``compress.distill``), over the training rows and
    any extra teacher-labelled rows; ``init_output_bias=False`` keeps a trained model's bias (fine-tuning).
    """
    started = time.perf_counter()
    deadline = started + cfg.max_minutes * 60 if cfg.max_minutes else math.inf
    if soft_targets is None:
        inputs, targets = data.train.inputs(), (data.train.label,)
    else:
        inputs, targets = soft_targets.rows(data.train)
    n = len(targets[0])
    budget = resolve_budget(n, len(data.val), cfg)
    bs, spe = budget.batch_size, budget.steps_per_epoch
    model.to(device)
    log_odds = train_log_odds(data)
    bias_set = init_output_bias and set_output_bias(model, log_odds)
    n_inputs = len(inputs)
    tensors = tuple(t.to(device) for t in (*inputs, *targets))
    optimizer = make_optimizer(model, cfg, budget.lr)
    scheduler = None
    if cfg.schedule != "constant" or cfg.warmup_fraction > 0:
        total = spe * budget.max_epochs
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total, cfg))
    pos_weight = None if data.pos_weight is None else torch.tensor(data.pos_weight, device=device)
    scaler = grad_scaler or torch.amp.GradScaler(device.type, enabled=False)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight) if soft_targets is None else soft_targets.loss(pos_weight)
    step = make_step(model, optimizer, scaler, loss_fn, autocast, cfg, n, scheduler)

    best, history = BestState(), []
    stopped, val_seconds, samples, epoch, done_steps = "max_epochs", 0.0, 0, 0, 0
    losses = torch.empty(budget.val_every, device=device)
    pending = 0  # steps since the last validation (their losses are in losses[:pending])

    def validate() -> bool:
        """Check the losses, score validation, keep the best; True when patience has run out."""
        nonlocal pending, val_seconds
        _check_finite(losses[:pending], epoch, done_steps - pending + 1)  # also waits for the device
        val_start = time.perf_counter()
        auc = validation_auc(model, data, autocast, device, val_batch_size)
        val_seconds += time.perf_counter() - val_start
        history.append({"epoch": epoch, "step": done_steps, "train_loss": float(losses[:pending].mean()),
                        "val_auc": auc, "lr": optimizer.param_groups[0]["lr"],
                        "seconds": time.perf_counter() - started})
        best.offer(auc, epoch, done_steps, model)
        pending = 0
        model.train()
        return budget.patience is not None and best.stale >= budget.patience

    loop_start = time.perf_counter()
    for epoch in range(1, budget.max_epochs + 1):
        if on_epoch is not None:
            on_epoch(epoch, budget.max_epochs)
        model.train()
        order = torch.randperm(n, device=device)
        for i in range(spe):
            batch = tuple(t[order[i * bs:(i + 1) * bs]] for t in tensors)
            losses[pending] = step(batch[:n_inputs], batch[n_inputs:])
            pending, done_steps, samples = pending + 1, done_steps + 1, samples + batch[0].shape[0]
            if pending % FINITE_CHECK_EVERY == 0:
                _check_finite(losses[pending - FINITE_CHECK_EVERY:pending], epoch, done_steps - FINITE_CHECK_EVERY + 1)
            if time.perf_counter() > deadline:
                stopped = "time_budget"
                break
            due = pending == budget.val_every or (i == spe - 1 and budget.val_every >= spe)
            if due and validate():
                stopped = "early_stopping"
                break
        if stopped != "max_epochs":
            break
    if pending:  # the steps after the last validation
        validate()
    step_seconds = time.perf_counter() - loop_start - val_seconds

    best.restore(model)
    model.eval()
    params = count_params(model)
    warnings = []
    if params > PARAMS_PER_ROW_WARN * n:
        warnings.append(f"{params:,} parameters for {n:,} training rows: expect overfitting; pick a smaller "
                        "model.size or add rows")
    return TrainResult(
        epochs_run=epoch, best_epoch=best.epoch, best_val_auc=best.auc, seconds=time.perf_counter() - started,
        samples_per_s=samples / step_seconds if step_seconds > 0 else 0.0, stopped_reason=stopped, history=history,
        steps_run=done_steps, best_step=best.step, batch_size=bs, lr=budget.lr, max_epochs=budget.max_epochs,
        steps_per_epoch=spe, val_every=budget.val_every, patience=budget.patience, min_steps=budget.min_steps,
        weight_decay=optimizer.param_groups[0]["weight_decay"], automatic=list(budget.automatic),
        output_bias=round(log_odds, 6) if bias_set else None, warnings=warnings,
    )
