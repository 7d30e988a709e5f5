"""The PyTorch families (logreg, mlp, dcn, gru, lstm, transformer) behind the family seam.

Building is ``models.build_model``, training is ``train.train_model`` under the precision policy's
autocast and gradient scaler, serving is the ``serve.runtime`` of ``costbench.runtimes`` (eager or
compiled PyTorch through the policy's cast / int8 quantization, or the exported graph in ONNX Runtime).
Whether the precision can run here is found out by the runtime (the policy's probe for torch), and a
missing kernel is a skip, never a fallback. ``compress`` acts here, at training time only: the loss
takes a distillation teacher's soft targets, and ``compress.prune`` narrows the trained model
(``costbench.compress.prune``) and fine-tunes it with the same loop; serving treats it like any model.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from costbench.compress.distill import SoftTargets
from costbench.compress.prune import PRUNABLE_FAMILIES, structured_prune
from costbench.data import PreparedData
from costbench.errors import TrialSkipped
from costbench.families.base import Family, FitSummary, Fitted, Progress, Served
from costbench.flops import forward_flops
from costbench.model_presets import resolve_hparams
from costbench.models import build_model, count_params
from costbench.precision import get_policy
from costbench.runtimes import get_runtime
from costbench.spec import TrialConfig
from costbench.train import train_model, validation_auc

CALIBRATION_ROWS = 4096  # training rows whose activations rank the units to keep


class TorchFamily(Family):
    """One of the PyTorch model families in ``costbench.models``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def check(self, cfg: TrialConfig, device: torch.device) -> None:
        reason = get_runtime(cfg.serve.runtime).skip_reason(cfg, device, self.name)
        if reason:
            raise TrialSkipped(reason)
        if cfg.compress.prune is not None and self.name not in PRUNABLE_FAMILIES:
            raise TrialSkipped(f"structured pruning is implemented for {', '.join(PRUNABLE_FAMILIES)}; "
                               f"'{self.name}' is not supported")

    def fit(self, data: PreparedData, cfg: TrialConfig, device: torch.device, on_progress: Progress,
            soft_targets: SoftTargets | None = None) -> Fitted:
        policy = get_policy(cfg.precision)
        hparams = resolve_hparams(cfg.model)
        model = build_model(hparams, data.schema).to(device)

        def train(net: torch.nn.Module, train_cfg: Any, what: str, **kwargs: Any) -> Any:
            return train_model(
                net, data, train_cfg, device=device, autocast=lambda: policy.autocast(device),
                grad_scaler=policy.grad_scaler(device), val_batch_size=cfg.eval.batch_size,
                on_epoch=lambda epoch, epochs: on_progress(f"{what} {epoch}/{epochs}"), soft_targets=soft_targets,
                **kwargs)

        trained = train(model, cfg.train, "train")
        training = dataclasses.asdict(trained)
        summary = FitSummary(best_val_auc=trained.best_val_auc, samples_per_s=trained.samples_per_s,
                             stopped_reason=trained.stopped_reason, epochs_run=trained.epochs_run, details=training)
        fitted = Fitted(model=model, hparams=hparams, params=count_params(model), summary=summary)
        prune = cfg.compress.prune
        if prune is None:
            return fitted
        on_progress("prune")
        calibration = tuple(t.to(device) for t in data.train.inputs(slice(0, CALIBRATION_ROWS)))
        result = structured_prune(model, hparams, data.schema, prune.amount, calibration)
        pruned = result.model.to(device)
        pruned_auc = validation_auc(pruned, data, lambda: policy.autocast(device), device, cfg.eval.batch_size)
        finetune_cfg = cfg.train.model_copy(update={"epochs": prune.finetune_epochs, "min_steps": 0})
        tuned = train(pruned, finetune_cfg, "fine-tune", init_output_bias=False)
        training["prune"] = {
            "method": prune.method, "amount": prune.amount, "criterion": result.criterion,
            "params_before": result.params_before, "params_after": result.params_after,
            "hparams_before": hparams, "hparams_after": result.hparams, "val_auc_before": trained.best_val_auc,
            "val_auc_pruned": pruned_auc, "val_auc_finetuned": tuned.best_val_auc,
            "finetune": dataclasses.asdict(tuned),
        }
        summary = FitSummary(best_val_auc=tuned.best_val_auc, samples_per_s=trained.samples_per_s,
                             stopped_reason=trained.stopped_reason, epochs_run=trained.epochs_run + tuned.epochs_run,
                             details=training)
        return Fitted(model=pruned, hparams=result.hparams, params=result.params_after, summary=summary,
                      uncompressed=fitted)

    def prepare(self, fitted: Fitted, data: PreparedData, cfg: TrialConfig, device: torch.device) -> Served:
        flops = forward_flops(fitted.model)  # before serving: int8 replaces the layers' weights in place
        return dataclasses.replace(get_runtime(cfg.serve.runtime).serve(fitted, data, cfg, device),
                                   flops_per_row=flops)


def family(name: str) -> TorchFamily:
    return TorchFamily(name)
