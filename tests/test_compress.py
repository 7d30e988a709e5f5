"""compress: the distillation loss, the teacher trained once for many students, pruned and skipped trials."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from costbench.cli import app
from costbench.compress import teacher as teacher_module
from costbench.compress.distill import DistillLoss, SoftTargets
from costbench.data.load import extra_synthetic_rows, load_data, synthetic_preparer
from costbench.spec import DataConfig, TrialConfig, load_sweep
from costbench.trial import run_trial

TINY = """\
name: tiny
data: {rows: 3000, sequence_length: 4}
model: {family: mlp, size: xs}
train: {epochs: 1, batch_size: 256}
serve: {batch_sizes: [1, 16], warmup: 2, min_calls: 662, min_seconds: 0, rounds: 1}
threads: 1
"""
DISTILL = "compress.distill={teacher: {family: mlp, size: xs, train: {epochs: 1}}, alpha: 0.25, temperature: 2}"


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """run_trial sets the trial's threads (1) process-wide; later tests in this process expect the default."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def trials_for(tmp_path: Path, *overrides: str, text: str = TINY) -> list[dict]:
    sweep = load_sweep(_write(tmp_path, text), list(overrides), cache_dir=str(tmp_path / "cache"))
    return [t.to_json() for t in sweep.trials]


def bce(z: float, p: float) -> float:
    s = 1 / (1 + math.exp(-z))
    return -(p * math.log(s) + (1 - p) * math.log(1 - s))


def test_distill_loss_matches_the_hand_computation() -> None:
    z, y, t, m = [1.5, -0.5, 0.2], [1.0, 0.0, 0.0], [2.0, -1.0, 0.8], [1.0, 1.0, 0.0]
    alpha, temp, w = 0.3, 2.0, 3.0
    expected = sum(
        alpha * mi * (w * yi * -math.log(1 / (1 + math.exp(-zi))) + (1 - yi) * -math.log(1 - 1 / (1 + math.exp(-zi))))
        + (1 - alpha) * temp**2 * bce(zi / temp, 1 / (1 + math.exp(-ti / temp)))
        for zi, yi, ti, mi in zip(z, y, t, m, strict=True)) / 3
    loss = DistillLoss(alpha, temp, torch.tensor(w))(*(torch.tensor(v) for v in (z, y, t, m)))
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    # alpha 1 is the plain label loss; the soft term alone is smallest where the student equals the teacher
    plain = torch.nn.BCEWithLogitsLoss()(torch.tensor(z), torch.tensor(y))
    assert float(DistillLoss(1.0, 1.0)(torch.tensor(z), torch.tensor(y), torch.tensor(t), torch.ones(3))) == \
        pytest.approx(float(plain))
    soft = DistillLoss(0.0, temp)
    teacher = torch.tensor(t)
    assert soft(teacher, torch.tensor(y), teacher, torch.ones(3)) < soft(teacher + 0.1, torch.tensor(y), teacher,
                                                                          torch.ones(3))


def test_extra_rows_follow_the_training_rows_without_a_label() -> None:
    data = load_data(DataConfig(rows=3000, sequence_length=4), None)
    cfg = DataConfig(rows=3000, sequence_length=4)
    extra = extra_synthetic_rows(cfg, 500, synthetic_preparer(cfg))
    targets = SoftTargets(train_logits=torch.zeros(len(data.train)), alpha=0.5, temperature=1.0, extra=extra,
                          extra_logits=torch.ones(500))
    inputs, (label, teacher_logits, labelled) = targets.rows(data.train)
    n = len(data.train)
    assert all(len(t) == n + 500 for t in (*inputs, label, teacher_logits, labelled))
    assert torch.equal(inputs[0][:n], data.train.numeric) and torch.equal(inputs[0][n:], extra.numeric)
    assert labelled[:n].eq(1).all() and labelled[n:].eq(0).all() and teacher_logits[n:].eq(1).all()
    # fresh sessions of the same shop: none is a training row, and they are prepared alike (same columns)
    assert extra.numeric.shape[1] == data.train.numeric.shape[1]
    seen = {tuple(row) for row in data.train.numeric.tolist()}
    assert not any(tuple(row) in seen for row in extra.numeric.tolist())


def test_the_teacher_is_trained_once_for_several_students(tmp_path: Path, monkeypatch) -> None:
    trained = []
    real = teacher_module.train_teacher
    monkeypatch.setattr(teacher_module, "train_teacher", lambda *a, **k: trained.append(1) or real(*a, **k))
    trials = trials_for(tmp_path, DISTILL, "grid={model.size: [xs, s], compress.distill.alpha: [0.25, 0.75]}")
    assert len(trials) == 4
    data = load_data(TrialConfig.model_validate(trials[0]["config"]).data, trials[0]["cache_dir"])
    teachers = []
    for trial in trials:
        cfg = TrialConfig.model_validate(trial["config"])
        teachers.append(teacher_module.obtain_teacher(cfg, data, trial["data_id"], trial["cache_dir"],
                                                      torch.device("cpu"), lambda _p: None))
    assert len(trained) == 1
    assert [t.cache_hit for t in teachers] == [False, True, True, True]
    assert len({t.info["id"] for t in teachers}) == 1
    assert torch.equal(teachers[0].train_logits, teachers[3].train_logits)
    assert len(list(Path(trials[0]["cache_dir"]).glob("teacher-*.pt"))) == 1


def test_trial_ids_tell_distilled_from_scratch_and_leave_uncompressed_ids_alone(tmp_path: Path) -> None:
    scratch, = trials_for(tmp_path)
    distilled, = trials_for(tmp_path, DISTILL)
    assert "compress" not in scratch["config"]  # as before compression existed: old runs resume
    assert distilled["config"]["compress"]["distill"]["alpha"] == 0.25
    assert scratch["id"] != distilled["id"]


@pytest.mark.slow
def test_two_parallel_students_share_one_teacher_and_say_what_it_cost(tmp_path: Path) -> None:
    """Through the local executor's two workers: one student trains the teacher, the other waits and reads it."""
    path = _write(tmp_path, TINY + "grid: {compress.distill.alpha: [0.25, 0.75]}\n")
    result = CliRunner().invoke(app, ["sweep", str(path), "--out", str(tmp_path / "run"), "--workers", "2",
                                      "--set", DISTILL])
    assert result.exit_code == 0, result.stdout + result.stderr
    records = [json.loads(line) for line in (tmp_path / "run" / "trials.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok", "ok"]
    teachers = [r["details"]["teacher"] for r in records]
    assert sorted(t["cache_hit"] for t in teachers) == [False, True]
    assert teachers[0]["id"] == teachers[1]["id"]
    for record in records:
        m = record["metrics"]
        assert 0.5 < m["teacher_auc"] <= 1
        assert m["train_cost_usd"] == pytest.approx(m["own_train_cost_usd"] + m["teacher_cost_usd"])
        assert m["teacher_cost_usd"] > 0


@pytest.mark.parametrize("family", ["mlp", "dcn"])
def test_a_pruned_trial_is_smaller_and_timed_before_and_after(tmp_path: Path, family: str) -> None:
    trial, = trials_for(tmp_path, f"model.family={family}", "model.size=s",
                        "compress.prune={amount: 0.5, finetune_epochs: 1}")
    record = run_trial(trial)
    assert record["status"] == "ok", record["reason"]
    m, prune = record["metrics"], record["details"]["training"]["prune"]
    assert m["params"] == prune["params_after"] < m["params_before_prune"] == prune["params_before"]
    assert m["params"] <= 0.5 * m["params_before_prune"]
    assert record["details"]["hparams"]["hidden"] < prune["hparams_before"]["hidden"]
    assert m["p50_ms_before_prune"] > 0 and set(record["details"]["prune_latency"]["before"]) == {"1", "16"}
    assert prune["finetune"]["epochs_run"] == 1


@pytest.mark.parametrize(("override", "reason"), [
    ("model.family=lightgbm", "is not implemented as a student"),
    ("model.family=logreg", None),
])
def test_unsupported_students_are_skipped_with_the_reason(tmp_path: Path, override: str, reason: str | None) -> None:
    compress = DISTILL if reason else "compress.prune={amount: 0.5}"
    trial, = trials_for(tmp_path, override, compress)
    record = run_trial(trial)
    assert record["status"] == "skipped"
    assert (reason or "structured pruning is implemented for mlp") in record["reason"]
    assert not list(Path(trial["cache_dir"]).glob("teacher-*")), "no teacher is trained for a skipped student"


def test_a_missing_teacher_library_is_warned_before_the_sweep(tmp_path: Path, monkeypatch) -> None:
    import importlib.util

    from costbench.spec import package_warnings

    trials = load_sweep(_write(tmp_path, TINY), ["compress.distill={teacher: {family: lightgbm}}"]).trials
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lightgbm" else real(name, *a))
    warnings = package_warnings(trials)
    assert len(warnings) == 1 and warnings[0].startswith("1 lightgbm trial(s) need the lightgbm package")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path
