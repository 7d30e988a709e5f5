"""The PyTorch families (logreg, mlp, dcn, gru, lstm, transformer) behind the family seam.

Building is ``models.build_model``, training is ``train.train_model`` under the precision policy's
autocast and gradient scaler, serving is the policy's cast / int8 quantization / compile. Whether the
precision can run here is found out by the policy's probe, and a missing kernel is a skip, never a
fallback.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from costbench.data import PreparedData, Split
from costbench.errors import TrialSkipped
from costbench.families.base import Family, FitSummary, Fitted, ModelSize, Progress, Served
from costbench.model_presets import resolve_hparams
from costbench.models import build_model, count_params
from costbench.precision import get_policy, param_bytes, serialized_bytes
from costbench.spec import TrialConfig
from costbench.train import train_model


def stage_tensors(device: torch.device) -> Any:
    """The torch runtime's inputs: the four input tensors of some rows, contiguous, on ``device``."""

    def stage(split: Split, rows: Any) -> tuple[torch.Tensor, ...]:
        return tuple(t[rows].contiguous().to(device) for t in split.inputs())

    return stage


class TorchFamily(Family):
    """One of the PyTorch model families in ``costbench.models``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def check(self, cfg: TrialConfig, device: torch.device) -> None:
        reason = get_policy(cfg.precision).skip_reason(device, self.name, cfg.quantize)
        if reason:
            raise TrialSkipped(reason)

    def fit(self, data: PreparedData, cfg: TrialConfig, device: torch.device, on_progress: Progress) -> Fitted:
        policy = get_policy(cfg.precision)
        hparams = resolve_hparams(cfg.model)
        model = build_model(hparams, data.schema).to(device)
        trained = train_model(
            model, data, cfg.train, device=device,
            autocast=lambda: policy.autocast(device), grad_scaler=policy.grad_scaler(device),
            on_epoch=lambda epoch, epochs: on_progress(f"train {epoch}/{epochs}"), val_batch_size=cfg.eval.batch_size,
        )
        training = dataclasses.asdict(trained)
        summary = FitSummary(best_val_auc=trained.best_val_auc, samples_per_s=trained.samples_per_s,
                             stopped_reason=trained.stopped_reason, epochs_run=trained.epochs_run, details=training)
        return Fitted(model=model, hparams=hparams, params=count_params(model), summary=summary)

    def prepare(self, fitted: Fitted, data: PreparedData, cfg: TrialConfig, device: torch.device) -> Served:
        stage = stage_tensors(device)
        example = stage(data.test, slice(0, cfg.serve.objective_batch_size))
        served = get_policy(cfg.precision).prepare_for_serving(fitted.model, example, device, cfg.quantize,
                                                               cfg.serve.compile)
        size = ModelSize(params=fitted.params, param_bytes=param_bytes(served), model_bytes=serialized_bytes(served))
        return Served(predict=served.fn, stage=stage, size=size, info={"runtime": "torch", **served.info},
                      prepare_seconds=served.info.get("quantize_seconds") or 0.0,
                      compile_seconds=served.info.get("compile_seconds") or 0.0)


def family(name: str) -> TorchFamily:
    return TorchFamily(name)
