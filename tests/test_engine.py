"""The sweep driver in this process: run directory, resume, retries, fail-fast, files written."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from costbench.engine import TRIAL_FN_ENV, SweepOptions, choose_run_dir, resume_command, run_sweep
from costbench.spec import load_sweep
from costbench.store import read_records
from tests.fake_trials import write_sweep


@pytest.fixture(autouse=True)
def fake_trials(monkeypatch):
    monkeypatch.setenv(TRIAL_FN_ENV, "tests.fake_trials:by_seed")


def sweep_once(sweep_file, out, overrides=(), **options):
    console, stderr = io.StringIO(), io.StringIO()
    code = run_sweep(load_sweep(sweep_file, list(overrides)), SweepOptions(out=out, **options),
                     console=Console(file=console, width=200), stderr=Console(file=stderr, width=200))
    return code, console.getvalue(), stderr.getvalue()


def statuses(run_dir):
    records, warnings = read_records(run_dir)
    assert warnings == []
    return [(r["id"], r["status"]) for r in records]


def test_a_rerun_resumes_and_failed_trials_run_again_only_when_asked(tmp_path):
    sweep_file = write_sweep(tmp_path, [0, 1, 100])
    out = tmp_path / "run"
    code, stdout, stderr = sweep_once(sweep_file, out, workers=1)
    assert code == 1, "a failed trial fails the sweep, so CI can tell"
    assert "1 trial(s) failed: exit status 1 (--allow-failures gives 0)" in stderr
    first = statuses(out)
    assert sorted(s for _, s in first) == ["failed", "ok", "ok"]
    assert "written:" in stdout and str(out / "trials.jsonl") in stdout

    code, stdout, _ = sweep_once(sweep_file, out, workers=1, allow_failures=True)
    assert code == 0 and statuses(out) == first
    assert "3 of 3 trial(s) already recorded (2 ok, 0 skipped, 1 failed (run them again with --retry-failed))" \
        in stdout and "nothing to run" in stdout

    code, _, _ = sweep_once(sweep_file, out, retry_failed=True, workers=1)
    failed_id = next(i for i, s in first if s == "failed")
    assert code == 1 and statuses(out) == [*first, (failed_id, "failed")]


def test_exit_status_is_0_when_every_trial_is_ok_or_skipped(tmp_path):
    sweep_file = write_sweep(tmp_path, [0, 1000])  # 1000 is skipped
    code, _, stderr = sweep_once(sweep_file, tmp_path / "run", workers=1)
    assert code == 0, stderr
    assert sorted(s for _, s in statuses(tmp_path / "run")) == ["ok", "skipped"]


def test_the_run_directory_holds_the_resolved_sweep_run_file_environments_and_data_summary(tmp_path):
    sweep_file = write_sweep(tmp_path, [0, 1])
    out = tmp_path / "run"
    sweep = load_sweep(sweep_file, ["data.rows=2000"])
    assert sweep_once(sweep_file, out, ["data.rows=2000"], workers=1)[0] == 0

    resolved = load_sweep(out / "sweep.yaml")  # what the resume command runs
    assert [t.id for t in resolved.trials] == [t.id for t in sweep.trials]

    run = json.loads((out / "run.json").read_text())
    assert run["trial_ids"] == [t.id for t in sweep.trials] and run["axes"] == ["seed"]
    assert run["executor"]["executor"] == "local" and run["executor"]["workers"] == 1
    assert run["executor"]["threads"] == 1

    records = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    for record in records:
        assert "environment" not in record, "the environment is stored once, not in every line"
        env = json.loads((out / "environments" / f"{record['env_id']}.json").read_text())
        assert env["cpu"]["usable_cores"] >= 1
        assert record["resources"]["threads"] == 1 and record["resources"]["workers"] == 1

    datasets = json.loads((out / "data_summary.json").read_text())["datasets"]
    assert len(datasets) == 1, "both trials share one dataset, prepared once by the driver"
    summary = datasets[0]["summary"]
    assert sum(summary["rows"].values()) == 2000
    assert 0.5 < summary["bayes_auc"] <= 1.0
    assert datasets[0]["config"]["rows"] == 2000


def test_fresh_starts_over_in_a_new_directory_and_deletes_nothing(tmp_path):
    out = tmp_path / "run"
    assert choose_run_dir("x", out, fresh=True) == out  # nothing there yet
    out.mkdir()
    (out / "trials.jsonl").write_text("{}\n")
    (tmp_path / "run-2").mkdir()
    (tmp_path / "run-2" / "trials.jsonl").write_text("{}\n")
    assert choose_run_dir("x", out, fresh=True) == tmp_path / "run-3"
    assert choose_run_dir("x", out, fresh=False) == out
    assert (out / "trials.jsonl").exists()


def test_fail_fast_stops_at_the_first_failure_with_exit_1_and_says_how_to_resume(tmp_path):
    sweep_file = write_sweep(tmp_path, [100, 0, 1, 2])
    out = tmp_path / "run"
    code, _, stderr = sweep_once(sweep_file, out, workers=1, fail_fast=True)
    assert code == 1
    assert [s for _, s in statuses(out)] == ["failed"]
    assert "stopped by --fail-fast: 3 trial(s) not run" in stderr
    assert f"resume with: costbench sweep {out}/sweep.yaml --out {out} --workers 1 --fail-fast" in stderr


def test_parallel_workers_give_the_same_records_as_one_worker(tmp_path):
    sweep_file = write_sweep(tmp_path, [0, 1, 2, 100, 200, 3])
    one, two = tmp_path / "one", tmp_path / "two"
    assert sweep_once(sweep_file, one, workers=1)[0] == 1  # seed 100 fails
    assert sweep_once(sweep_file, two, workers=2)[0] == 1

    def outcome(run_dir):
        records, _ = read_records(run_dir)
        return {r["id"]: (r["status"], r["reason"], r["metrics"]) for r in records}, \
            {r["concurrent_trials"] for r in records}

    (serial, serial_concurrency), (parallel, parallel_concurrency) = outcome(one), outcome(two)
    assert serial == parallel and len(serial) == 6
    assert serial_concurrency == {1} and 2 in parallel_concurrency


def test_resume_command_repeats_the_options_that_shape_the_run(tmp_path):
    options = SweepOptions(workers=2, trial_timeout=30.0, retry_failed=True)
    assert resume_command(tmp_path / "my run", options) == (
        f"costbench sweep '{tmp_path}/my run/sweep.yaml' --out '{tmp_path}/my run' --workers 2 "
        "--trial-timeout 30 --retry-failed")


def test_live_progress_shows_running_trials_their_phase_and_the_counts(tmp_path):
    from collections import Counter

    from costbench.progress import SweepProgress

    todo = load_sweep(write_sweep(tmp_path, [0, 1])).trials
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)
    with SweepProgress(console, todo, done=3, counts=Counter(ok=2, failed=1)) as progress:
        progress.started(todo[0].id)
        progress.phase(todo[0].id, "train 2/5")
        progress._progress.refresh()
        assert f"{todo[0].id} seed=0  train 2/5" in out.getvalue()
        progress.finished({"id": todo[0].id, "status": "failed", "reason": "ValueError: boom"})
        progress._progress.refresh()
    text = out.getvalue()
    assert "ok 2  failed 2  skipped 0" in text and "4/5" in text
    assert f"failed  {todo[0].id} seed=0  ValueError: boom" in text


def test_a_bad_data_file_stops_the_sweep_before_any_trial(tmp_path):
    from costbench.errors import UserError

    (tmp_path / "shop.csv").write_text("price,bought\n1.0,yes\n")
    sweep_file = write_sweep(tmp_path, [0], data={"source": "csv", "path": "shop.csv", "label": "purchased"})
    out = tmp_path / "run"
    with pytest.raises(UserError, match="purchased"):
        sweep_once(sweep_file, out)
    assert not out.exists()


def test_executor_local_overrides_a_ray_sweep_without_its_ray_settings(tmp_path):
    sweep_file = write_sweep(tmp_path, [0], executor={"kind": "ray", "address": "10.0.0.5:6379", "retries": 2})
    out = tmp_path / "run"
    code, _, stderr = sweep_once(sweep_file, out, executor="local", workers=1)
    assert code == 0, stderr
    assert [s for _, s in statuses(out)] == ["ok"]
    run = json.loads((out / "run.json").read_text())["executor"]
    assert (run["executor"], run["address"], run["retries"]) == ("local", None, None)


def test_records_of_the_wrong_shape_are_skipped_with_a_warning_and_never_count_as_done(tmp_path):
    sweep_file = write_sweep(tmp_path, [0, 1])
    out = tmp_path / "run"
    first, second = (t.id for t in load_sweep(sweep_file).trials)
    out.mkdir()
    (out / "trials.jsonl").write_text(
        json.dumps({"id": first, "status": "done", "metrics": {}, "axes": {}, "config": {}}) + "\n"
        + json.dumps({"id": second, "status": "ok", "metrics": "oops", "axes": {}, "config": {}}) + "\n"
        + json.dumps({"id": [second], "status": "ok", "metrics": {}}) + "\n")
    code, stdout, stderr = sweep_once(sweep_file, out, workers=1)
    assert code == 0, stderr
    assert "trials.jsonl:1: not a trial record ('status' 'done'" in stderr
    assert "trials.jsonl:2: not a trial record ('metrics' is not an object)" in stderr
    assert "trials.jsonl:3: not a trial record ('id' is not a non-empty string)" in stderr
    assert "resuming" not in stdout, "an unknown status is not a finished trial"
    records, _ = read_records(out)
    assert sorted(r["id"] for r in records) == sorted([first, second])


def test_a_signal_ignored_by_the_caller_stays_ignored_as_nohup_wants(tmp_path):
    import signal

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        from costbench.engine import _handling

        with _handling((signal.SIGHUP, signal.SIGTERM), lambda *_: None):
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) != signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_every_record_names_an_environment_file_that_stays_true_after_a_resume_elsewhere(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "fake-machine").write_text("laptop")
    assert sweep_once(write_sweep(tmp_path, [0, 1]), out, workers=1)[0] == 0
    (out / "fake-machine").write_text("gpu-server")
    assert sweep_once(write_sweep(tmp_path, [0, 1, 2]), out, workers=1)[0] == 0  # resumes: runs seed 2 only

    records, _ = read_records(out)
    hosts = {}
    for record in records:
        env = json.loads((out / "environments" / f"{record['env_id']}.json").read_text())
        hosts[record["config"]["seed"]] = env["host"]
    assert hosts == {0: "laptop", 1: "laptop", 2: "gpu-server"}, "each record keeps the machine it ran on"
    assert len(list((out / "environments").glob("*.json"))) == 2, "each distinct environment is stored once"


def test_a_record_without_an_environment_gets_the_drivers_marked_so(tmp_path):
    out = tmp_path / "run"
    assert sweep_once(write_sweep(tmp_path, [100]), out, workers=1)[0] == 1  # raises: the executor's record
    (record,) = read_records(out)[0]
    env = json.loads((out / "environments" / f"{record['env_id']}.json").read_text())
    assert env["collected_in"] == "driver" and env["cpu"]["usable_cores"] >= 1


def test_a_resume_reruns_ok_trials_recorded_with_other_threads(tmp_path):
    out = tmp_path / "run"
    sweep_file = write_sweep(tmp_path, [0, 1])
    assert sweep_once(sweep_file, out, workers=1)[0] == 0
    lines = (out / "trials.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["resources"]["threads"] = 4  # as if made by a run whose plan gave 4 threads per trial
    (out / "trials.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")

    code, console, _ = sweep_once(sweep_file, out, workers=1)
    assert code == 0
    assert "re-running 1 trial(s) recorded with other threads" in console
    records, _ = read_records(out)
    assert [r["resources"]["threads"] for r in records if r["id"] == first["id"]] == [4, 1]
