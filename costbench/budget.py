"""The training budget sized to the data: batch size, learning rate, epoch cap and validation cadence.

Defaults that hold from 1,000 to 10,000,000 training rows without a knob, after the published recipes
of RealMLP (Holzmüller et al. 2024) and TabM (Gorishniy et al. 2024): AdamW, batch 256 on small data,
lr about 1e-3..3e-3, early stopping with patience 16 on validation AUC and the best state restored.

- batch size: 256 up to ~50,000 rows, then doubling with the rows (n / 200 rounded to a power of two),
  at most 4096, so a 10M-row table does not take 40,000 steps per epoch;
- learning rate: 2e-3 at batch 256, scaled with the square root of the batch size, at most 3e-3;
- epoch cap (``train.epochs`` when set, else automatic): enough epochs for ``train.min_steps`` steps,
  and otherwise up to 100 epochs or 100,000 steps, whichever is fewer; early stopping ends most runs;
- validation every ``val_every`` steps: at most once an epoch, at least 25 steps apart, and at least
  twice the validation rows trained between two passes (so validation costs about a sixth of training).

Every resolved value goes into the training result (and so into the record).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from costbench.spec import TrainConfig

SMALL_BATCH = 256
MAX_BATCH = 4096
ROWS_PER_STEP_DIVISOR = 200
BASE_LR = 2e-3
MAX_LR = 3e-3
AUTO_MAX_EPOCHS = 100
AUTO_MAX_STEPS = 100_000
MIN_VAL_EVERY = 25


@dataclass(frozen=True)
class Budget:
    batch_size: int
    lr: float
    max_epochs: int
    steps_per_epoch: int
    val_every: int
    patience: int | None
    min_steps: int
    automatic: tuple[str, ...]  # which of the values above were chosen here rather than set by the user


def auto_batch_size(n_train: int) -> int:
    target = n_train / ROWS_PER_STEP_DIVISOR
    power = 2 ** round(math.log2(target)) if target > 1 else 1
    return int(min(MAX_BATCH, max(SMALL_BATCH, power)))


def auto_lr(batch_size: int) -> float:
    return min(MAX_LR, BASE_LR * math.sqrt(batch_size / SMALL_BATCH))


def resolve_budget(n_train: int, n_val: int, cfg: TrainConfig) -> Budget:
    """The budget for ``n_train`` training and ``n_val`` validation rows under ``cfg``."""
    automatic = [name for name in ("batch_size", "lr", "epochs", "val_every") if getattr(cfg, name) is None]
    batch_size = cfg.batch_size or auto_batch_size(n_train)
    lr = cfg.lr or auto_lr(batch_size)
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    max_epochs = cfg.epochs
    if max_epochs is None:
        cap = min(AUTO_MAX_EPOCHS, math.ceil(AUTO_MAX_STEPS / steps_per_epoch))
        max_epochs = max(math.ceil(cfg.min_steps / steps_per_epoch), cap)
    val_every = cfg.val_every
    if val_every is None:
        val_every = min(steps_per_epoch, max(MIN_VAL_EVERY, math.ceil(2 * n_val / batch_size)))
    return Budget(batch_size=batch_size, lr=lr, max_epochs=max_epochs, steps_per_epoch=steps_per_epoch,
                  val_every=val_every, patience=cfg.patience, min_steps=cfg.min_steps, automatic=tuple(automatic))
