"""The sweep driver as a real process: kill -9, a second driver, Ctrl-C once and twice, then resume.

Each test starts `python -m costbench sweep` (with the fake trial functions of tests/fake_trials.py),
so they take seconds: the driver imports torch and its forkserver preloads it.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from costbench.engine import TRIAL_FN_ENV
from costbench.executors.local import GRACE_S
from costbench.spec import load_sweep
from costbench.store import LOCK_FILE, read_records
from tests.fake_trials import write_sweep

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def driver_env(pid_dir: Path) -> dict[str, str]:
    return {**os.environ, TRIAL_FN_ENV: "tests.fake_trials:by_seed", "COSTBENCH_FAKE_PID_DIR": str(pid_dir),
            "COSTBENCH_FAKE_HOLD": str(pid_dir / "hold")}


def start(args: list[str], pid_dir: Path) -> subprocess.Popen:
    # a session of its own, so a signal to its process group is what Ctrl-C in a terminal sends
    return subprocess.Popen([sys.executable, "-m", "costbench", *args], cwd=REPO, env=driver_env(pid_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def run(args: list[str], pid_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "costbench", *args], cwd=REPO, env=driver_env(pid_dir),
                          capture_output=True, text=True, timeout=120)


def wait_for(condition, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie is dead; only its parent has not collected it


def trial_pids(pid_dir: Path) -> list[int]:
    return [int(p.stem) for p in pid_dir.glob("*.pid")]


def assert_no_trial_outlives(pid_dir: Path) -> None:
    wait_for(lambda: not any(alive(pid) for pid in trial_pids(pid_dir)), "trial processes to die", 10)


def ids(run_dir: Path) -> list[str]:
    return [r["id"] for r in read_records(run_dir)[0]]


def test_kill_9_then_a_rerun_completes_exactly_the_missing_trials(tmp_path):
    sweep_file = write_sweep(tmp_path, [0, 1, 800, 801])  # 800 and 801 wait for the hold file to go
    out, pids = tmp_path / "run", tmp_path / "pids"
    pids.mkdir()
    (pids / "hold").touch()
    wanted = {t.id for t in load_sweep(sweep_file).trials}
    args = ["sweep", str(sweep_file), "--out", str(out), "--workers", "2"]

    driver = start(args, pids)
    wait_for(lambda: len(ids(out)) == 2 and len(trial_pids(pids)) == 4, "two records and two held trials")
    driver.send_signal(signal.SIGKILL)
    driver.communicate(timeout=30)
    before = (out / "trials.jsonl").read_bytes()
    records, warnings = read_records(out)
    assert warnings == [] and len(records) >= 2 and {r["status"] for r in records} == {"ok"}
    assert_no_trial_outlives(pids)

    with open(out / "trials.jsonl", "ab") as handle:  # and the power went out mid-write, too
        handle.write(b'{"id": "torn", "sta')
    (pids / "hold").unlink()

    again = run(args, pids)
    assert again.returncode == 0, again.stderr
    assert "torn last line (interrupted write) ignored" in again.stderr
    assert "took over the lock of a sweep that died" in again.stderr
    after = (out / "trials.jsonl").read_bytes()
    assert after.startswith(before)
    final = ids(out)
    assert len(final) == len(set(final)) and set(final) == wanted
    assert final[: len(records)] == [r["id"] for r in records]


def test_second_driver_is_locked_out_and_ctrl_c_keeps_records_and_resumes(tmp_path):
    sweep_file = write_sweep(tmp_path, [0, 800, 801])  # 800 and 801 wait for the hold file to go
    out, pids = tmp_path / "run", tmp_path / "pids"
    pids.mkdir()
    (pids / "hold").touch()
    wanted = {t.id for t in load_sweep(sweep_file).trials}
    args = ["sweep", str(sweep_file), "--out", str(out), "--workers", "1"]

    first = start(args, pids)
    wait_for(lambda: len(ids(out)) == 1 and len(trial_pids(pids)) == 2, "a record and a held trial")
    assert (out / LOCK_FILE).read_text()

    second = run(args, pids)
    assert second.returncode == 2
    errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "another sweep is writing this run directory" in errors[0]
    assert f"pid {first.pid} " in errors[0]

    os.killpg(first.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 130, stderr
    records, warnings = read_records(out)
    assert warnings == [] and {r["status"] for r in records} == {"ok"}  # the ended trial left no record
    assert_no_trial_outlives(pids)
    (pids / "hold").unlink()
    resume = next(line for line in stderr.splitlines() if line.startswith("resume with: "))
    command = shlex.split(resume.removeprefix("resume with: "))
    assert command[:2] == ["costbench", "sweep"]

    resumed = run(command[1:], pids)
    assert resumed.returncode == 0, resumed.stderr
    final = ids(out)
    assert len(final) == len(set(final)) and set(final) == wanted


def test_a_second_ctrl_c_leaves_at_once_without_waiting_for_a_stubborn_trial(tmp_path):
    sweep_file = write_sweep(tmp_path, [0, 700])  # 700 ignores SIGTERM: ending it takes the grace period
    out, pids = tmp_path / "run", tmp_path / "pids"
    pids.mkdir()
    driver = start(["sweep", str(sweep_file), "--out", str(out), "--workers", "1"], pids)
    wait_for(lambda: len(ids(out)) == 1 and len(trial_pids(pids)) == 2, "the stubborn trial to start")
    time.sleep(0.3)
    os.killpg(driver.pid, signal.SIGINT)
    time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGINT)
    second = time.monotonic()
    assert driver.wait(timeout=30) == 130
    assert time.monotonic() - second < GRACE_S / 2  # the first Ctrl-C alone waits GRACE_S for the trial
    driver.communicate(timeout=30)
    assert_no_trial_outlives(pids)
    records, warnings = read_records(out)
    assert warnings == [] and [r["status"] for r in records] == ["ok"]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_or_sighup_to_the_driver_stops_it_like_ctrl_c(tmp_path, signum, code):
    sweep_file = write_sweep(tmp_path, [0, 800, 801])  # 800 and 801 wait for the hold file to go
    out, pids, tmp = tmp_path / "run", tmp_path / "pids", tmp_path / "tmp"
    pids.mkdir()
    tmp.mkdir()
    (pids / "hold").touch()
    env = {**driver_env(pids), "TMPDIR": str(tmp)}  # so the test sees the driver's temp directories
    driver = subprocess.Popen([sys.executable, "-m", "costbench", "sweep", str(sweep_file), "--out", str(out),
                               "--workers", "1"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    wait_for(lambda: len(ids(out)) == 1 and len(trial_pids(pids)) == 2, "a record and a held trial")
    def temp_dirs() -> list[Path]:  # the host-wide files (latency lock, GEMM-peak cache) are meant to stay
        return [p for p in tmp.glob("costbench-*") if p.is_dir()]

    assert temp_dirs(), "the executor keeps its trial logs in a temp directory"

    driver.send_signal(signum)  # to the driver alone, as kubectl or a scheduler sends it
    _, stderr = driver.communicate(timeout=60)
    assert driver.returncode == code, stderr
    assert f"interrupted ({signal.Signals(signum).name})" in stderr
    assert "Traceback" not in stderr
    resume = next(line for line in stderr.splitlines() if line.startswith("resume with: "))
    assert shlex.split(resume.removeprefix("resume with: "))[:3] == ["costbench", "sweep", str(out / "sweep.yaml")]
    records, warnings = read_records(out)
    assert warnings == [] and [r["status"] for r in records] == ["ok"]  # the ended trial left no record
    assert (out / LOCK_FILE).read_text() == "", "the lock is released, not left naming a dead process"
    assert not temp_dirs(), "temp directories are removed"
    assert_no_trial_outlives(pids)


def test_ctrl_c_while_the_data_is_prepared_is_one_line_and_exit_130(tmp_path):
    # 1.5M synthetic rows take seconds to prepare; meanwhile the forkserver is still importing torch
    sweep_file = write_sweep(tmp_path, [0], data={"rows": 1_500_000})
    out, pids = tmp_path / "run", tmp_path / "pids"
    pids.mkdir()
    driver = start(["sweep", str(sweep_file), "--out", str(out)], pids)
    wait_for(lambda: (out / "sweep.yaml").exists(), "the sweep to start preparing its data")
    time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGINT)  # Ctrl-C: the whole process group, forkserver included
    _, stderr = driver.communicate(timeout=60)
    assert driver.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert lines[0] == "interrupted (SIGINT); every record written so far is kept" and len(lines) == 2, stderr
    assert lines[1].startswith("resume with: costbench sweep")
    assert trial_pids(pids) == [] and not (out / "trials.jsonl").exists()
