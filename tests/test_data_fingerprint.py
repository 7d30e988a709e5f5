"""Data identity (issue 15, item 2): a trial id covers its data's content, so a changed CSV re-runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from costbench.cli import app
from costbench.data.fingerprint import MISSING, data_fingerprint
from costbench.record import make_record
from costbench.spec import load_sweep
from tests.test_spec_errors import one_line_error

ROOT = Path(__file__).parents[1]
CSV_A = "pages,seconds,bought\n" + "".join(f"{i % 7},{i},{'yes' if i % 5 == 0 else 'no'}\n" for i in range(200))
CSV_B = "pages,seconds,bought\n" + "".join(f"{i % 9},{i},{'yes' if i % 3 == 0 else 'no'}\n" for i in range(200))
SWEEP = "name: t\ndata: {source: csv, path: shop.csv, label: bought}\nmodel: {family: mlp}\n"


def ids(tmp_path: Path, csv: str) -> list[tuple[str, str, str]]:
    (tmp_path / "shop.csv").write_text(csv)
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(SWEEP)
    return [(t.id, t.group, t.data_id) for t in load_sweep(sweep_file).trials]


def test_a_changed_csv_changes_the_trial_ids_and_the_same_content_keeps_them(tmp_path: Path) -> None:
    first = ids(tmp_path, CSV_A)
    changed = ids(tmp_path, CSV_B)
    assert first[0][0] != changed[0][0] and first[0][1] != changed[0][1] and first[0][2] != changed[0][2]
    time.sleep(0.01)  # a new mtime: the per-process cache must not hand back the old digest
    assert ids(tmp_path, CSV_A) == first


def test_same_size_new_content_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n")
    before = data_fingerprint({"source": "csv", "path": str(path), "test_path": None})
    path.write_text("a,b\n3,4\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert data_fingerprint({"source": "csv", "path": str(path), "test_path": None}) != before


def test_the_test_file_is_part_of_the_data(tmp_path: Path) -> None:
    (tmp_path / "main.csv").write_text(CSV_A)
    (tmp_path / "test.csv").write_text(CSV_A)
    config = {"source": "csv", "path": str(tmp_path / "main.csv"), "test_path": str(tmp_path / "test.csv")}
    before = data_fingerprint(config)
    (tmp_path / "test.csv").write_text(CSV_B)
    assert data_fingerprint(config) != before


def test_synthetic_ids_are_stable_across_processes(tmp_path: Path) -> None:
    """Hashes of canonical JSON, never Python's per-process hash(): ids survive a restart and a new machine."""
    code = ("from costbench.spec import load_sweep; "
            "print(' '.join(t.id + ':' + t.data_id for t in load_sweep('sweeps/smoke.yaml').trials))")
    outputs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
        for seed in ("1", "2")
    }
    here = " ".join(f"{t.id}:{t.data_id}" for t in load_sweep(ROOT / "sweeps/smoke.yaml").trials)
    assert outputs == {here}
    assert len({t.split(":")[1] for t in here.split()}) == 1  # one dataset for all six trials


def test_synthetic_fingerprint_follows_the_generator_parameters_only() -> None:
    base = {"source": "synthetic", "rows": 1000, "positive_rate": 0.1, "noise": 1.0, "sequence_length": 8,
            "n_items": 50, "n_categories": 5, "seed": 7, "class_weight": "none"}
    assert data_fingerprint(base) == data_fingerprint({**base, "class_weight": "balanced"})
    assert data_fingerprint(base) != data_fingerprint({**base, "seed": 8})


def test_a_missing_file_is_fingerprinted_missing_and_reported_with_the_sweep_file(tmp_path: Path) -> None:
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(SWEEP)
    assert {t.data_id for t in load_sweep(sweep_file).trials} == {MISSING}
    result = CliRunner().invoke(app, ["validate", str(sweep_file)])
    line = one_line_error(result)
    assert "shop.csv: no such file" in line and f"{sweep_file}:2:1" in line


def test_a_device_file_is_never_read_by_the_fingerprint() -> None:
    start = time.perf_counter()
    assert data_fingerprint({"source": "csv", "path": "/dev/zero", "test_path": None}) == MISSING
    assert time.perf_counter() - start < 1


def test_the_record_carries_the_data_id(tmp_path: Path) -> None:
    (tmp_path / "shop.csv").write_text(CSV_A)
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(SWEEP)
    trial = load_sweep(sweep_file).trials[0]
    assert trial.to_json()["data_id"] == trial.data_id
    assert make_record(trial.to_json(), "skipped", reason="test")["data_id"] == trial.data_id


@pytest.mark.slow  # three sweeps with worker processes: about 8 s on two busy cores
def test_a_sweep_reruns_the_trials_of_a_changed_csv_and_says_so(tmp_path: Path, monkeypatch) -> None:
    """Issue 15's case: replace the CSV, run again: not "nothing to run", but a re-run and one note."""
    import io

    from rich.console import Console

    from costbench.engine import TRIAL_FN_ENV, SweepOptions, run_sweep
    from costbench.store import read_records

    monkeypatch.setenv(TRIAL_FN_ENV, "tests.fake_trials:by_seed")
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(SWEEP + "grid: {seed: [0, 1]}\n")
    out = tmp_path / "run"

    def run(csv: str) -> str:
        (tmp_path / "shop.csv").write_text(csv)
        console = io.StringIO()
        code = run_sweep(load_sweep(sweep_file), SweepOptions(out=out, workers=1),
                         console=Console(file=console, width=200), stderr=Console(file=io.StringIO(), width=200))
        assert code == 0
        return console.getvalue()

    run(CSV_A)
    again = run(CSV_A)
    assert "nothing to run" in again and "other data" not in again
    changed = run(CSV_B)
    assert "2 recorded trial(s) ran on other data" in changed and "nothing to run" not in changed
    records = read_records(out)[0]
    assert len(records) == 4 and len({r["data_id"] for r in records}) == 2
