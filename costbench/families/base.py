"""The model-family seam: what a trial needs from any model library, PyTorch or not.

A family is one small backend. ``run_trial`` calls it in a fixed order and knows nothing else about it::

    family.check(cfg, device)                 # raise TrialSkipped when this cannot run honestly here
    fitted = family.fit(data, cfg, device, on_progress)      # train with the budget, early stopping on val
    served = family.prepare(fitted, data, cfg, device)       # precision / runtime for serving
    served.predict(*served.stage(split, rows))               # float32 logits, as production would score

Adding a family is adding a module and one line in ``costbench.families.FAMILY_MODULES``; trial.py,
the precision code and the report need no ``if family in ...`` branch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from costbench.spec import TrialConfig

if TYPE_CHECKING:  # torch-free at import
    from costbench.compress.distill import SoftTargets

Progress = Callable[[str], None]  # "train 2/5", "tree 300/1000": shown by the live display


@dataclass
class FitSummary:
    """How training went, in the units the record reports; ``details`` holds the family's own extras."""

    best_val_auc: float | None
    samples_per_s: float | None  # training rows per second of the optimisation itself
    stopped_reason: str  # "max_epochs", "early_stopping", "time_budget", "max_iterations", ...
    epochs_run: int | None = None  # networks
    iterations_run: int | None = None  # boosting rounds / trees
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Fitted:
    """A trained model and what the record says about it."""

    model: Any
    hparams: dict[str, Any]  # the resolved size preset and overrides
    params: int  # trainable parameters, or the tree families' node count
    summary: FitSummary
    uncompressed: Fitted | None = None  # compress.prune: the trained model before pruning, to time beside it


@dataclass
class ModelSize:
    """What the served model weighs: in memory (``param_bytes``) and as shipped (``model_bytes``)."""

    params: int
    param_bytes: int | None
    model_bytes: int | None


@dataclass
class Served:
    """The model as a serving runtime runs it.

    ``stage(split, rows)`` turns rows of a split into the runtime's own inputs, already on its device (so
    latency times the model, not the conversion); ``predict(*staged)`` returns one float32 logit per row
    (a torch Tensor or a numpy array). ``info`` says exactly what ran (dtype, scheme, compiled, runtime).
    """

    predict: Callable[..., Any]
    stage: Callable[[Any, Any], tuple[Any, ...]]
    size: ModelSize
    info: dict[str, Any] = field(default_factory=dict)
    prepare_seconds: float = 0.0  # quantizing / converting, counted as training cost
    compile_seconds: float = 0.0  # compiling for serving, kept out of both training and latency
    flops_per_row: int | None = None  # the forward's matrix-product FLOPs per row (costbench.flops); None: uncounted


class Family(ABC):
    """One model library behind the seam (see the module docstring for the order of calls)."""

    name: str

    @abstractmethod
    def check(self, cfg: TrialConfig, device: Any) -> None:
        """Raise ``TrialSkipped`` with the reason when ``cfg`` cannot run honestly on ``device`` here."""

    @abstractmethod
    def fit(self, data: Any, cfg: TrialConfig, device: Any, on_progress: Progress,
            soft_targets: SoftTargets | None = None) -> Fitted:
        """Train on ``data.train`` under ``cfg.train``'s budget, early-stopping on ``data.val`` only;
        ``soft_targets``: a distillation teacher's (``compress.distill``), for a family ``check`` let through."""

    @abstractmethod
    def prepare(self, fitted: Fitted, data: Any, cfg: TrialConfig, device: Any) -> Served:
        """The trained model under ``cfg.precision`` on its serving runtime."""
