"""Knowledge distillation for a binary label: the student's loss mixes the labels and the teacher's soft targets.

For a training row with student logit ``z``, teacher logit ``t``, label ``y`` and ``m`` = 1 when the row
is labelled (0 for an extra, teacher-labelled-only row), with ``alpha`` and temperature ``T``::

    hard = -[w*y*log s(z) + (1 - y)*log(1 - s(z))]          (w: data.class_weight's pos_weight, else 1)
    soft = -T^2 * [p*log s(z/T) + (1 - p)*log(1 - s(z/T))],  p = s(t/T)
    loss = mean over the batch of  alpha*m*hard + (1 - alpha)*soft

``s`` is the sigmoid. ``T^2`` keeps the soft term's gradient, ``T * (s(z/T) - p)``, on the scale of the
hard one's as ``T`` grows (Hinton, Vinyals and Dean 2015). ``alpha = 1`` is training on the labels alone;
``alpha = 0`` trains on the teacher alone. Extra rows carry no label, so only their soft term counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from costbench.data import Split


class DistillLoss(nn.Module):
    """The loss in the module docstring; ``forward(z, y, t, m)`` takes per-row tensors of one batch."""

    def __init__(self, alpha: float, temperature: float, pos_weight: Tensor | None = None) -> None:
        super().__init__()
        self.alpha, self.temperature, self.pos_weight = alpha, temperature, pos_weight

    def forward(self, logits: Tensor, label: Tensor, teacher_logits: Tensor, labelled: Tensor) -> Tensor:
        t = self.temperature
        hard = F.binary_cross_entropy_with_logits(logits, label, pos_weight=self.pos_weight, reduction="none")
        soft = F.binary_cross_entropy_with_logits(logits / t, torch.sigmoid(teacher_logits / t), reduction="none")
        return (self.alpha * labelled * hard + (1 - self.alpha) * t * t * soft).mean()


@dataclass
class SoftTargets:
    """What a student trains on besides its labels: the teacher's logits on its training rows, in their
    order, and optionally extra unlabelled rows with the teacher's logits on them."""

    train_logits: Tensor  # float32 [n_train]
    alpha: float
    temperature: float
    extra: Split | None = None
    extra_logits: Tensor | None = None  # float32 [n_extra]

    def rows(self, train: Split) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """The training loop's (inputs, targets): the training rows then the extra ones; targets are
        (label, teacher logit, labelled 1/0), the arguments of ``DistillLoss`` after the logits."""
        if len(self.train_logits) != len(train):
            raise ValueError(f"the teacher scored {len(self.train_logits)} training rows, the student has {len(train)}")
        ones = torch.ones(len(train))
        if self.extra is None or self.extra_logits is None:
            return train.inputs(), (train.label, self.train_logits, ones)
        extra = self.extra
        inputs = tuple(torch.cat(pair) for pair in zip(train.inputs(), extra.inputs(), strict=True))
        zeros = torch.zeros(len(extra))
        return inputs, (torch.cat([train.label, zeros]), torch.cat([self.train_logits, self.extra_logits]),
                        torch.cat([ones, zeros]))

    def loss(self, pos_weight: Tensor | None) -> DistillLoss:
        return DistillLoss(self.alpha, self.temperature, pos_weight)
