"""The PyTorch families (logreg, mlp, dcn, gru, lstm, transformer) behind the family seam.

Building is ``models.build_model``, training is ``train.train_model`` under the precision policy's
autocast and gradient scaler, serving is the ``serve.runtime`` of ``costbench.runtimes`` (eager or
compiled PyTorch through the policy's cast / int8 quantization, or the exported graph in ONNX Runtime).
Whether the precision can run here is found out by the runtime (the policy's probe for torch), and a
missing kernel is a skip, never a fallback.
"""

from __future__ import annotations

import dataclasses

import torch

from costbench.compress.distill import SoftTargets
from costbench.data import PreparedData
from costbench.errors import TrialSkipped
from costbench.families.base import Family, FitSummary, Fitted, Progress, Served
from costbench.model_presets import resolve_hparams
from costbench.models import build_model, count_params
from costbench.precision import get_policy
from costbench.runtimes import get_runtime
from costbench.spec import TrialConfig
from costbench.train import train_model


class TorchFamily(Family):
    """One of the PyTorch model families in ``costbench.models``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def check(self, cfg: TrialConfig, device: torch.device) -> None:
        reason = get_runtime(cfg.serve.runtime).skip_reason(cfg, device, self.name)
        if reason:
            raise TrialSkipped(reason)

    def fit(self, data: PreparedData, cfg: TrialConfig, device: torch.device, on_progress: Progress,
            soft_targets: SoftTargets | None = None) -> Fitted:
        policy = get_policy(cfg.precision)
        hparams = resolve_hparams(cfg.model)
        model = build_model(hparams, data.schema).to(device)
        trained = train_model(
            model, data, cfg.train, device=device,
            autocast=lambda: policy.autocast(device), grad_scaler=policy.grad_scaler(device),
            on_epoch=lambda epoch, epochs: on_progress(f"train {epoch}/{epochs}"), val_batch_size=cfg.eval.batch_size,
            soft_targets=soft_targets,
        )
        training = dataclasses.asdict(trained)
        summary = FitSummary(best_val_auc=trained.best_val_auc, samples_per_s=trained.samples_per_s,
                             stopped_reason=trained.stopped_reason, epochs_run=trained.epochs_run, details=training)
        return Fitted(model=model, hparams=hparams, params=count_params(model), summary=summary)

    def prepare(self, fitted: Fitted, data: PreparedData, cfg: TrialConfig, device: torch.device) -> Served:
        return get_runtime(cfg.serve.runtime).serve(fitted, data, cfg, device)


def family(name: str) -> TorchFamily:
    return TorchFamily(name)
