"""The teacher of a distilled trial: trained once per sweep and cached, then read by every student naming it.

A teacher is ``compress.distill.teacher`` run as a trial of its own on the student's data, device and
threads, in fp32 on the eager runtime, with its own ``train`` section and ``seed``. Its id is a hash of
that config and of the data's fingerprint, so two students naming the same teacher share it whatever
their own model, training, seed, precision or runtime. What is cached (``teacher-<id>-x<extra_rows>.pt``
in the data cache folder, written atomically under a lock by ``data.cache.cached_file``) is what a
student needs and what its record states: the teacher's logits on the training rows, the extra rows and
its logits on them, its test AUC and what training and labelling it took. A second student arriving
while the first trains the teacher waits on the lock and reads the first one's file.

The teacher's cost is its training plus the labelling of the rows it distils (extra rows generated
included, but not the refit of the data's own preparation they are prepared with); scoring its test
split is measurement, not cost.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from costbench.compress.distill import SoftTargets
from costbench.data import PreparedData, Split
from costbench.data.cache import cached_file, pack_split, unpack_split
from costbench.errors import TrialSkipped
from costbench.spec import ModelConfig, TrialConfig, trial_id
from costbench.spec.schema import DistillConfig

FORMAT_VERSION = 1  # bump when what a teacher file holds changes (old files are then retrained)
INFO_KEYS = ("auc", "auc_ci_low", "auc_ci_high", "val_auc")


@dataclass
class Teacher:
    """A trained teacher as a student sees it: what the record says about it, and its soft targets."""

    info: dict[str, Any]  # id, config, family, auc, params, seconds, threads, device, gpu, ...
    train_logits: torch.Tensor
    extra: Split | None
    extra_logits: torch.Tensor | None
    cache_hit: bool = False

    def soft_targets(self, distill: DistillConfig) -> SoftTargets:
        return SoftTargets(train_logits=self.train_logits, alpha=distill.alpha, temperature=distill.temperature,
                           extra=self.extra, extra_logits=self.extra_logits)


def teacher_config(cfg: TrialConfig) -> TrialConfig:
    """The teacher of a distilled trial as a trial config of its own (see the module docstring)."""
    distill = cfg.compress.distill
    if distill is None:
        raise ValueError("the trial has no compress.distill")
    teacher = distill.teacher
    model = ModelConfig.model_validate(teacher.model_dump(exclude={"train", "seed"}))
    return TrialConfig(data=cfg.data, model=model, train=teacher.train, eval=cfg.eval, device=cfg.device,
                       threads=cfg.threads, prices=cfg.prices, seed=teacher.seed)


def teacher_id(cfg: TrialConfig, data_id: str) -> str:
    """Hash of what makes a teacher: its model, training, seed, the data, the device and the threads."""
    tcfg = teacher_config(cfg)
    dump = tcfg.model_dump(mode="json")
    return trial_id({k: dump[k] for k in ("data", "model", "train", "seed", "device", "threads")}, data_id)


def obtain_teacher(cfg: TrialConfig, data: PreparedData, data_id: str, cache_dir: str | Path | None,
                   device: torch.device, on_progress: Callable[[str], None],
                   on_wait: Callable[[], None] | None = None,
                   on_acquired: Callable[[], None] | None = None) -> Teacher:
    """The trial's teacher: read from the cache folder, or trained now (and stored there for the others).

    ``on_wait`` is called if another trial is training it (this one waits for its file), ``on_acquired``
    when that wait ends. Without a cache folder every student trains its own teacher. Raises
    ``TrialSkipped`` when the teacher cannot run here (its reason, prefixed ``teacher:``)."""
    distill = cfg.compress.distill
    assert distill is not None
    tid = teacher_id(cfg, data_id)
    build = functools.partial(train_teacher, cfg, data, device, tid, on_progress)
    if cache_dir is None:
        return build()
    teacher, hit = cached_file(Path(cache_dir), f"teacher-{tid}-x{distill.extra_rows}", FORMAT_VERSION, build,
                               _payload, _from_payload, _payload_bytes, on_wait, on_acquired)
    teacher.cache_hit = hit
    return teacher


def train_teacher(cfg: TrialConfig, data: PreparedData, device: torch.device, tid: str,
                  on_progress: Callable[[str], None]) -> Teacher:
    """Train, serve and score the teacher, then have it label the training rows and the extra ones."""
    from costbench.data.load import extra_synthetic_rows, synthetic_preparer
    from costbench.evaluate import evaluate, predict_logits
    from costbench.families import get_family
    from costbench.train import seed_everything

    distill = cfg.compress.distill
    assert distill is not None
    tcfg = teacher_config(cfg)
    family = get_family(tcfg.model.family)
    try:
        family.check(tcfg, device)
    except TrialSkipped as exc:
        raise TrialSkipped(f"teacher: {exc}") from None
    seed_everything(tcfg.seed)
    start = time.perf_counter()
    fitted = family.fit(data, tcfg, device, lambda p: on_progress(f"teacher {p}"))
    served = family.prepare(fitted, data, tcfg, device)
    fit_seconds = time.perf_counter() - start
    on_progress("teacher evaluate")
    quality = evaluate(served.predict, data, tcfg.eval, device, stage=served.stage)
    on_progress("teacher labels")
    preparer = synthetic_preparer(tcfg.data) if distill.extra_rows else None  # the data's own, refitted: not a cost
    start = time.perf_counter()
    batch = tcfg.eval.batch_size
    train_logits = predict_logits(served.predict, data.train, batch, device, served.stage)
    extra = extra_synthetic_rows(tcfg.data, distill.extra_rows, preparer) if preparer else None
    extra_logits = None if extra is None else predict_logits(served.predict, extra, batch, device, served.stage)
    label_seconds = time.perf_counter() - start
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    info = {
        "id": tid, "format": FORMAT_VERSION, "family": tcfg.model.family, "size": tcfg.model.size,
        "config": distill.teacher.model_dump(mode="json"), "hparams": fitted.hparams, "params": fitted.params,
        **{k: quality[k] for k in INFO_KEYS if k in quality}, "val_auc": fitted.summary.best_val_auc,
        "fit_seconds": fit_seconds, "label_seconds": label_seconds, "seconds": fit_seconds + label_seconds,
        "extra_rows": distill.extra_rows, "labelled_rows": len(data.train), "device": str(device),
        "threads": torch.get_num_threads(), "gpu": gpu, "stopped_reason": fitted.summary.stopped_reason,
    }
    return Teacher(info=info, train_logits=train_logits, extra=extra, extra_logits=extra_logits)


def _payload(teacher: Teacher) -> dict[str, Any]:
    return {"format": FORMAT_VERSION, "info": teacher.info, "train_logits": teacher.train_logits,
            "extra": None if teacher.extra is None else pack_split(teacher.extra),
            "extra_logits": teacher.extra_logits}


def _payload_bytes(payload: dict[str, Any]) -> int:
    tensors = [payload["train_logits"], payload["extra_logits"], *(payload["extra"] or {}).values()]
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def _from_payload(payload: dict[str, Any]) -> Teacher:
    extra = None if payload["extra"] is None else unpack_split(payload["extra"])
    return Teacher(info=payload["info"], train_logits=payload["train_logits"], extra=extra,
                   extra_logits=payload["extra_logits"])
