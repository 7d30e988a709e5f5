"""The local executor: worker planning, and real trial processes that succeed, raise, die or hang."""

from __future__ import annotations

import pytest

from costbench.executors import make_executor
from costbench.executors.local import LocalExecutor
from costbench.resources import plan_resources
from costbench.spec import load_sweep
from tests.fake_trials import latency_lock_held, write_sweep

FAKE = "tests.fake_trials:by_seed"


def trials(tmp_path, seeds, **extra):
    return load_sweep(write_sweep(tmp_path, seeds, **extra)).trials


def run_all(executor, todo):
    events = list(executor.run(todo))
    executor.close()
    records = {e.trial_id: e.record for e in events if e.kind == "finished"}
    assert len(records) == len(todo), "every trial ends with exactly one finished event"
    return records, events


def test_cpu_default_is_one_single_threaded_worker_per_core(tmp_path):
    plan = plan_resources(trials(tmp_path, [0, 1, 2, 3, 4, 5]), cores=4)
    assert (plan.workers, plan.threads, plan.notes) == (4, 1, [])


def test_workers_times_threads_is_clamped_to_the_cores_and_says_so(tmp_path):
    plan = plan_resources(trials(tmp_path, [0, 1, 2, 3], threads=2), workers=4, cores=4)
    assert plan.workers == 2
    assert "--workers 4" in plan.notes[0] and "running 2" in plan.notes[0]


def test_cuda_default_is_one_worker_per_gpu_with_the_cores_shared(tmp_path):
    plan = plan_resources(trials(tmp_path, [0, 1, 2, 3], device="cuda"), cores=16, gpus=2)
    assert (plan.workers, plan.threads) == (2, 8)


def test_never_more_workers_than_trials(tmp_path):
    assert plan_resources(trials(tmp_path, [0]), cores=8).workers == 1


def test_ray_only_settings_are_refused_by_the_local_executor():
    from costbench.errors import UserError

    with pytest.raises(UserError, match="--address only applies to the ray executor"):
        make_executor("local", address="10.0.0.1:6379")


def test_every_way_a_trial_ends_gives_one_record_and_the_others_finish(tmp_path):
    # ok, raise, os._exit, segfault, ok-with-output
    todo = trials(tmp_path, [0, 100, 200, 300, 600])
    records, events = run_all(LocalExecutor(workers=2, threads=1, trial_fn=FAKE), todo)
    by_seed = {t.config["seed"]: records[t.id] for t in todo}

    assert by_seed[0]["status"] == by_seed[600]["status"] == "ok"
    assert by_seed[0]["details"]["torch_threads"] == 1

    raised = by_seed[100]
    assert raised["status"] == "failed" and raised["reason"] == "ValueError: boom in trial seed 100"
    assert raised["details"]["error"]["traceback"][-1] == "ValueError: boom in trial seed 100"

    exited = by_seed[200]
    assert exited["status"] == "failed"
    assert "exited with code 3" in exited["reason"] and "about to leave without a word" in exited["reason"]

    crashed = by_seed[300]
    assert crashed["status"] == "failed"
    assert "killed by SIGSEGV in ctypes/__init__.py" in crashed["reason"]
    assert crashed["pid"] != by_seed[0]["pid"]

    phases = [e.phase for e in events if e.kind == "phase" and e.trial_id == todo[0].id]
    assert phases == ["data", "train 1/1"]
    for record in records.values():
        assert record["details"]["harness"]["process_start_s"] is not None
        assert 1 <= record["concurrent_trials"] <= 2


def test_a_trial_that_runs_too_long_is_ended_and_recorded_as_timeout(tmp_path):
    todo = trials(tmp_path, [400, 0])
    records, _ = run_all(LocalExecutor(workers=2, threads=1, trial_timeout=1.5, trial_fn=FAKE), todo)
    hung = records[todo[0].id]
    assert hung["status"] == "failed"
    assert hung["reason"] == "timeout in phase train 1/1 after 1.5 s"
    assert records[todo[1].id]["status"] == "ok"


def test_a_timed_out_trial_keeps_the_metrics_it_measured_before_the_timeout(tmp_path):
    todo = trials(tmp_path, [500])  # reports auc and train_seconds, then hangs in the latency phase
    records, _ = run_all(LocalExecutor(workers=1, threads=1, trial_timeout=1.5, trial_fn=FAKE), todo)
    hung = records[todo[0].id]
    assert (hung["status"], hung["reason"]) == ("failed", "timeout in phase latency after 1.5 s")
    assert hung["metrics"] == {"auc": 0.75, "train_seconds": 1.25}  # the non-number it sent is dropped


def test_a_wait_for_the_latency_lock_does_not_count_against_the_timeout_and_is_recorded(tmp_path):
    import dataclasses

    todo = [dataclasses.replace(t, cache_dir=str(tmp_path)) for t in trials(tmp_path, [900])]
    executor = LocalExecutor(workers=1, threads=1, trial_timeout=1.5, trial_fn=FAKE)
    events = []
    with latency_lock_held(tmp_path, 2.0) as let_go:  # another trial is timing, 2 s past the 1.5 s timeout
        for event in executor.run(todo):
            events.append(event)
            if event.phase == "waiting for latency lock":
                let_go()
        executor.close()
    record = next(e.record for e in events if e.kind == "finished")
    assert record["status"] == "ok", record["reason"]
    assert 1.9 <= record["details"]["harness"]["lock_wait_s"] < 10


def test_a_trial_function_that_returns_no_record_fails_its_trial(tmp_path):
    todo = trials(tmp_path, [0])
    records, _ = run_all(LocalExecutor(workers=1, threads=1, trial_fn="tests.fake_trials:not_a_record"), todo)
    assert records[todo[0].id]["status"] == "failed"
    assert "no valid record" in records[todo[0].id]["reason"]


def test_a_record_no_reader_could_use_fails_its_trial_instead_of_being_written(tmp_path):
    todo = trials(tmp_path, [0])
    records, _ = run_all(LocalExecutor(workers=1, threads=1, trial_fn="tests.fake_trials:metrics_not_numbers"),
                         todo)
    record = records[todo[0].id]
    assert record["status"] == "failed" and "metric 'auc' is not a number or null" in record["reason"]


def test_cancel_ends_running_trials_without_a_record_and_launches_no_more(tmp_path):
    todo = trials(tmp_path, [400, 401, 402])
    executor = LocalExecutor(workers=1, threads=1, trial_fn=FAKE)
    seen = []
    for event in executor.run(todo):
        seen.append(event)
        if event.kind == "phase" and event.phase == "train 1/1":
            executor.cancel()
    executor.close()
    assert [e.kind for e in seen if e.kind != "phase"] == ["started"]


def test_waiting_for_a_teacher_another_trial_trains_stops_the_clock_like_the_latency_lock():
    from costbench.executors.base import LOCK_WAIT_PHASE, TEACHER_WAIT_PHASE, LockWait

    clock = LockWait()
    assert clock.phase("teacher", 0.0) == 0.0 and not clock.waiting
    clock.phase(TEACHER_WAIT_PHASE, 10.0)
    assert clock.waiting
    assert clock.phase("teacher", 12.5) == 2.5
    clock.phase(LOCK_WAIT_PHASE, 20.0)
    assert clock.phase("latency", 21.0) == 1.0
    assert clock.total_s == 3.5 and not clock.waiting
