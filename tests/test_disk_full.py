"""A full disk (ENOSPC) anywhere: one line naming the file and the space it needed, never half a record.

Two ways of filling the disk: an ENOSPC injected at the ``os.write`` of a record, and a real 3 MB tmpfs
(mounted only where this process may mount one, as root in CI; skipped elsewhere).
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from costbench.engine import TRIAL_FN_ENV, SweepOptions, run_sweep
from costbench.errors import UserError
from costbench.spec import load_sweep
from costbench.store import LOCK_FILE, TRIALS_FILE, DiskFull, RunStore, read_records, write_text_atomic
from tests.fake_trials import write_sweep

REPO = Path(__file__).resolve().parents[1]


def record(trial_id: str) -> dict:
    return {"id": trial_id, "status": "ok", "metrics": {"auc": 0.5}, "axes": {}, "config": {}}


@pytest.mark.parametrize("how", ["short write", "ENOSPC"])
def test_a_record_the_disk_cannot_take_is_cut_back_off_and_named(tmp_path, monkeypatch, how):
    import costbench.store as store_module

    real_write = os.write
    with RunStore(tmp_path) as store:
        store.append(record("t0"))
        before = (tmp_path / TRIALS_FILE).read_bytes()

        def full_write(fd: int, data: bytes) -> int:
            if how == "short write":  # the kernel took what fit and said so
                return real_write(fd, data[: len(data) // 2])
            real_write(fd, data[:10])  # some filesystems write a part before they fail
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(store_module.os, "write", full_write)
        with pytest.raises(DiskFull) as err:
            store.append(record("t1"))
        assert (tmp_path / TRIALS_FILE).read_bytes() == before, "no half record stays"
        message = str(err.value)
        assert message.startswith(f"{tmp_path / TRIALS_FILE}: no space left on device: writing it needs ")
        assert "bytes" in message and "--out" in message and "\n" not in message

        monkeypatch.setattr(store_module.os, "write", real_write)  # space was freed
        store.append(record("t2"))
    records, warnings = read_records(tmp_path)
    assert warnings == [] and [r["id"] for r in records] == ["t0", "t2"]


def test_a_small_file_replaced_on_a_full_disk_keeps_its_old_content(tmp_path, monkeypatch):
    path = tmp_path / "sweep.yaml"
    path.write_text("old\n")

    def no_space(self: Path, data: bytes) -> int:
        self.open("wb").write(data[:1])
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", no_space)
    with pytest.raises(DiskFull, match=r"sweep\.yaml: no space left on device: writing it needs 4 bytes"):
        write_text_atomic(path, "new\n")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["sweep.yaml"]


# ------------------------------------------------------------------------------------- a real tmpfs


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs, or a skip where this process may not mount one."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()[:100]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_data_cache_too_big_for_the_disk_is_one_line_and_leaves_no_temp_file(small_disk, tmp_path,
                                                                              monkeypatch):
    monkeypatch.setenv(TRIAL_FN_ENV, "tests.fake_trials:by_seed")
    sweep_file = write_sweep(tmp_path, [0], data={"rows": 40_000})  # prepared: about 10 MB
    out = small_disk / "run"
    with pytest.raises(UserError) as err:
        run_sweep(load_sweep(sweep_file), SweepOptions(out=out, workers=1), console=Console(file=io.StringIO()),
                  stderr=Console(file=io.StringIO()))
    message = str(err.value)
    assert message.startswith(f"{out / 'data-cache'}/data-") and ".pt: no space left on device: writing it " \
        "needs " in message and "MB" in message and "\n" not in message
    assert not list((out / "data-cache").glob(".*tmp")), "the half-written cache entry is removed"
    assert (out / LOCK_FILE).read_text() == ""


@pytest.mark.slow
def test_a_disk_that_fills_up_mid_sweep_stops_it_with_every_record_whole_and_resumes(small_disk, tmp_path):
    out = small_disk / "run"
    filler = small_disk / "filler"
    sweep_file = write_sweep(tmp_path, [0, 1100, 1])  # 1100 fills the disk, then its record cannot be written
    env = {**os.environ, TRIAL_FN_ENV: "tests.fake_trials:by_seed", "COSTBENCH_FAKE_FILL": str(filler)}

    def costbench(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "costbench", *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=120)

    args = ["sweep", str(sweep_file), "--out", str(out), "--workers", "1"]
    first = costbench(*args)
    assert first.returncode == 2, first.stderr
    assert "Traceback" not in first.stderr
    errors = [line for line in first.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {out / TRIALS_FILE}: no space left on device: "
                                                     "writing it needs ") and "0 bytes free" in errors[0]
    assert any(line.startswith("resume with: costbench sweep") for line in first.stderr.splitlines())
    assert (out / TRIALS_FILE).read_bytes().endswith(b"\n")
    records, warnings = read_records(out)
    assert warnings == [] and [r["config"]["seed"] for r in records] == [0]  # whole, and 1 never launched
    assert (out / LOCK_FILE).read_text() == ""

    report = costbench("report", str(out))  # on the full disk too
    assert report.returncode == 2 and "Traceback" not in report.stderr, report.stderr
    assert len([line for line in report.stderr.splitlines() if line.startswith("error:")]) == 1

    filler.unlink()  # space freed: the resume runs what was not recorded
    env.pop("COSTBENCH_FAKE_FILL")
    again = costbench(*args)
    assert again.returncode == 0, again.stderr
    records, warnings = read_records(out)
    assert warnings == [] and [r["config"]["seed"] for r in records] == [0, 1100, 1]


def test_a_full_disk_when_the_lock_is_taken_is_one_line_and_leaves_it_free(small_disk):
    filler = small_disk / "filler"
    from tests.fake_trials import _fill

    _fill(filler)
    with pytest.raises(DiskFull, match=r"\.costbench\.lock: no space left on device: writing it needs \d+ bytes"):
        RunStore(small_disk / "run").lock()
    filler.unlink()
    with RunStore(small_disk / "run") as store:  # nobody holds it
        assert store.took_over_from is None
