"""The Ray executor on a real two-node cluster on loopback: same records as the local executor,
crashes and timeouts as failed records, cancel kills running trials, and no node outlives the tests."""

from __future__ import annotations

import io
import re
import signal
import time

import pytest
import yaml
from rich.console import Console

pytest.importorskip("ray", reason="the optional ray extra is not installed (pip install -e '.[ray]'); CI installs it")

from costbench.engine import TRIAL_FN_ENV, SweepOptions, run_sweep
from costbench.errors import UserError
from costbench.executors import make_executor
from costbench.executors.ray import RayExecutor, task_options
from costbench.spec import load_sweep
from costbench.store import read_records
from tests import ray_cluster
from tests.fake_trials import latency_lock_held, write_sweep

FAKE = "tests.fake_trials:by_seed"
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def cluster():
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a CI timeout's SIGTERM still ends the nodes
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ray_cluster.ENV.items():
            patch.setenv(name, value)
        running = ray_cluster.start_cluster(nodes=2, cpus_per_node=1)
        try:
            yield running
        finally:
            left = ray_cluster.stop_cluster(running)
            signal.signal(signal.SIGTERM, previous)
    assert left == [], f"Ray processes outlived their cluster: {left}"


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def trials(tmp_path, seeds, **extra):
    return load_sweep(write_sweep(tmp_path, seeds, **extra)).trials


def finished(events):
    return {e.trial_id: e.record for e in events if e.kind == "finished"}


def test_a_sweep_on_two_nodes_records_what_the_local_executor_records(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv(TRIAL_FN_ENV, FAKE)
    sweep_file = write_sweep(tmp_path, [0, 1, 100, 200], threads=1)  # ok x2, raises, ends its process
    on_ray = sweep(sweep_file, tmp_path / "ray", executor="ray", address=cluster.address)
    on_local = sweep(sweep_file, tmp_path / "local", workers=2)

    assert sorted(on_ray) == sorted(on_local)
    assert len(on_ray) == 4
    for trial_id, record in on_ray.items():
        assert (record["status"], record["metrics"]) == (on_local[trial_id]["status"], on_local[trial_id]["metrics"])
    by_seed = {r["config"]["seed"]: r for r in on_ray.values()}
    assert by_seed[100]["reason"] == "ValueError: boom in trial seed 100"
    assert by_seed[100]["reason"] == next(r["reason"] for r in on_local.values() if r["config"]["seed"] == 100)
    assert by_seed[100]["details"]["error"]["type"] == "ValueError"
    assert by_seed[200]["status"] == "failed"
    assert re.match(r"worker crashed \(pid \d+ on .+\): The worker died", by_seed[200]["reason"])

    # three trials whose worker survives them, on two nodes: two shared a node, yet no process was reused
    survivors = [by_seed[s] for s in (0, 1, 100)]
    assert len({r["pid"] for r in survivors}) == 3, "every trial gets a fresh worker process (max_calls=1)"
    assert len({r["details"]["harness"]["node"] for r in survivors}) == 2, "both nodes ran trials"
    ok = [by_seed[0], by_seed[1]]
    assert all(r["details"]["harness"]["threads"] == 1 and r["details"]["torch_threads"] == 1 for r in ok)


def test_the_real_trial_gives_the_same_quality_on_ray_as_locally(cluster, tmp_path, monkeypatch):
    monkeypatch.delenv(TRIAL_FN_ENV, raising=False)
    sweep_file = tmp_path / "tiny.yaml"
    sweep_file.write_text(yaml.safe_dump({
        "name": "tiny", "threads": 1, "grid": {"seed": [0, 1]}, "objectives": ["auc:max"],
        "data": {"rows": 3000, "positive_rate": 0.1, "sequence_length": 0},
        "model": {"family": "mlp", "size": "xs"}, "train": {"epochs": 1, "batch_size": 256},
        "serve": {"batch_sizes": [1], "warmup": 5, "min_calls": 662, "min_seconds": 0, "rounds": 1}}))
    on_ray = sweep(sweep_file, tmp_path / "ray", executor="ray", address=cluster.address)
    on_local = sweep(sweep_file, tmp_path / "local", workers=1)

    assert sorted(on_ray) == sorted(on_local) and len(on_ray) == 2
    for trial_id, record in on_ray.items():
        assert record["status"] == on_local[trial_id]["status"] == "ok", record["reason"]
        quality = ("auc", "pr_auc", "logloss", "val_auc", "params")
        assert {k: record["metrics"][k] for k in quality} == {k: on_local[trial_id]["metrics"][k] for k in quality}
    first, second = (r["metrics"]["auc"] for r in on_ray.values())
    assert first != second, "the seeds differ, so equal AUCs above are not a constant"


def sweep(sweep_file, out, **options):
    code = run_sweep(load_sweep(sweep_file), SweepOptions(out=out, allow_failures=True, **options),
                     console=Console(file=io.StringIO()), stderr=Console(file=io.StringIO()))
    assert code == 0
    records, warnings = read_records(out)
    assert warnings == []
    return {r["id"]: r for r in records}


def test_a_trial_past_its_timeout_is_killed_and_failed_keeping_its_partial_metrics(cluster, tmp_path):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    todo = trials(tmp_path, [500], threads=1)  # reports auc and train_seconds, then hangs
    executor = RayExecutor(address=cluster.address, trial_fn=FAKE, trial_timeout=2,
                           runtime_env={"env_vars": {"COSTBENCH_FAKE_PID_DIR": str(pid_dir)}})
    began = time.monotonic()
    events = list(executor.run(todo))
    took = time.monotonic() - began
    executor.close()
    assert [(e.kind, e.phase) for e in events] == [("started", None), ("phase", "data"), ("phase", "train 1/1"),
                                                  ("phase", "latency"), ("finished", None)]
    hung = events[-1].record
    assert (hung["status"], hung["reason"]) == ("failed", "timeout in phase latency after 2 s")
    assert hung["metrics"] == {"auc": 0.75, "train_seconds": 1.25}
    assert hung["details"]["harness"]["trial_wall_s"] >= 2 and took < 30
    assert_gone(pids_in(pid_dir), "the timed-out trial's worker")


def test_a_wait_for_the_latency_lock_does_not_count_against_the_timeout(cluster, tmp_path):
    import dataclasses

    todo = [dataclasses.replace(t, cache_dir=str(tmp_path)) for t in trials(tmp_path, [900], threads=1)]
    # 6 s: time for a fresh Ray worker to import torch, not for the 8 s wait on top
    executor = RayExecutor(address=cluster.address, trial_fn=FAKE, trial_timeout=6)
    events = []
    with latency_lock_held(tmp_path, 8.0) as let_go:
        for event in executor.run(todo):
            events.append(event)
            if event.phase == "waiting for latency lock":
                let_go()
        executor.close()
    record = finished(events)[todo[0].id]
    assert record["status"] == "ok", record["reason"]
    assert 7 <= record["details"]["harness"]["lock_wait_s"] < 20


def test_retries_run_a_crashed_trial_again_and_its_record_stays_failed(cluster, tmp_path):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    todo = trials(tmp_path, [200], threads=1)  # ends its own process every time
    executor = RayExecutor(address=cluster.address, trial_fn=FAKE, retries=1,
                           runtime_env={"env_vars": {"COSTBENCH_FAKE_PID_DIR": str(pid_dir)}})
    records = finished(executor.run(todo))
    executor.close()
    assert records[todo[0].id]["status"] == "failed"
    assert len(pids_in(pid_dir)) == 2, "one attempt, then the one retry asked for"


def test_cancel_kills_running_trials_and_run_returns_promptly(cluster, tmp_path):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    todo = trials(tmp_path, [401, 402], threads=1)  # both hang
    executor = RayExecutor(address=cluster.address, trial_fn=FAKE,
                           runtime_env={"env_vars": {"COSTBENCH_FAKE_PID_DIR": str(pid_dir)}})
    in_trial, events, cancelled_at = set(), [], None
    for event in executor.run(todo):
        events.append(event)
        if event.kind == "phase":  # past the point where the trial wrote its pid
            in_trial.add(event.trial_id)
        if len(in_trial) == 2 and cancelled_at is None:
            seen = {int(line.split(":")[0]) for line in ray_cluster.leftovers(cluster)}
            assert set(pids_in(pid_dir)) <= seen, "the end-of-tests check would see a surviving worker"
            cancelled_at = time.monotonic()
            executor.cancel()
    returned_after = time.monotonic() - cancelled_at
    executor.close()
    assert returned_after < 2.0
    assert not [e for e in events if e.kind == "finished"], "a cancelled trial leaves no record to resume"
    assert len(pids_in(pid_dir)) == 2
    assert_gone(pids_in(pid_dir), "cancelled trials' workers")


def test_resources_follow_the_trial_and_impossible_trials_are_skipped(tmp_path):
    cpu_node, gpu_node = {"CPU": 4.0}, {"CPU": 8.0, "GPU": 1.0}
    [cpu] = trials(tmp_path, [0], threads=2)
    assert task_options(cpu, [cpu_node], threads=None, retries=2) == (
        {"num_cpus": 2, "num_gpus": 0, "max_retries": 2, "retry_exceptions": False}, None)
    [default] = trials(tmp_path, [0])
    assert task_options(default, [cpu_node], threads=3, retries=0)[0]["num_cpus"] == 3
    [cuda] = trials(tmp_path, [0], device="cuda")
    assert task_options(cuda, [cpu_node, gpu_node], None, 0)[0]["num_gpus"] == 1
    assert "no node of the Ray cluster has 1 CPU and 1 GPU (nodes: 4 CPU 0 GPU)" in \
        task_options(cuda, [cpu_node], None, 0)[1]
    [auto] = trials(tmp_path, [0], device="auto")
    assert task_options(auto, [gpu_node], None, 0)[0]["num_gpus"] == 1
    assert task_options(auto, [cpu_node], None, 0)[0]["num_gpus"] == 0
    [pinned] = trials(tmp_path, [0], device="cuda:1")
    assert "each trial gets one GPU that Ray picks" in task_options(pinned, [gpu_node], None, 0)[1]
    [wide] = trials(tmp_path, [0], threads=16)
    assert "has 16 CPU" in task_options(wide, [cpu_node, gpu_node], None, 0)[1]


def test_an_unreachable_address_is_a_user_error_in_seconds():
    began = time.monotonic()
    with pytest.raises(UserError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:\d+"):
        make_executor("ray", address=f"127.0.0.1:{ray_cluster.free_port()}")
    assert time.monotonic() - began < 10


def pids_in(directory):
    return [int(p.stem) for p in directory.glob("*.pid")]


def assert_gone(pids, what, within_s=10.0):
    deadline = time.monotonic() + within_s
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in pids if _alive(pid)]
        time.sleep(0.1)
    assert not alive, f"{what} still running: {alive}"


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
