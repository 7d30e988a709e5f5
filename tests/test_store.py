"""The run directory's store: durable appends, torn lines, the single-writer lock."""

from __future__ import annotations

import json
import os

import pytest

from costbench.errors import UserError
from costbench.store import LOCK_FILE, TRIALS_FILE, RunStore, latest_records, read_records


def record(trial_id: str, status: str = "ok", **metrics: float) -> dict:
    return {"id": trial_id, "status": status, "metrics": metrics}


def test_appended_records_read_back_in_order(tmp_path):
    with RunStore(tmp_path) as store:
        for i in range(3):
            store.append(record(f"t{i}", auc=0.5 + i / 10))
    records, warnings = read_records(tmp_path)
    assert [r["id"] for r in records] == ["t0", "t1", "t2"]
    assert records[2]["metrics"]["auc"] == pytest.approx(0.7)
    assert warnings == []


def test_non_finite_numbers_are_written_as_null_so_the_file_stays_strict_json(tmp_path):
    import numpy as np

    with RunStore(tmp_path) as store:
        store.append(record("t0", auc=float("nan"), p99_ms=float("inf"), p50_ms=np.float32(0.5),
                            params=np.int64(7), throughput=np.float64(np.nan)))
    line = (tmp_path / TRIALS_FILE).read_text()
    assert "NaN" not in line and "Infinity" not in line
    assert json.loads(line)["metrics"] == {"auc": None, "p99_ms": None, "p50_ms": 0.5, "params": 7,
                                           "throughput": None}


def test_append_after_a_torn_last_line_keeps_the_next_record_whole(tmp_path):
    with RunStore(tmp_path) as store:
        store.append(record("t0"))
    with open(tmp_path / TRIALS_FILE, "ab") as handle:
        handle.write(b'{"id": "t1", "status": "o')  # power lost mid-write
    records, warnings = read_records(tmp_path)
    assert [r["id"] for r in records] == ["t0"]
    assert len(warnings) == 1 and "torn last line" in warnings[0]

    with RunStore(tmp_path) as store:
        store.append(record("t2"))
    records, warnings = read_records(tmp_path)
    assert [r["id"] for r in records] == ["t0", "t2"]
    assert len(warnings) == 1 and ":2:" in warnings[0]


def test_latest_record_of_an_id_wins():
    records = [record("a", "failed"), record("b"), record("a", "ok")]
    latest = latest_records(records)
    assert list(latest) == ["b", "a"]
    assert latest["a"]["status"] == "ok"


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    with RunStore(tmp_path), pytest.raises(UserError) as err, RunStore(tmp_path):
        pass
    message = str(err.value)
    assert f"pid {os.getpid()}" in message and "--out" in message and "\n" not in message


def test_lock_is_released_on_close_and_a_dead_holders_lock_is_taken_over(tmp_path):
    with RunStore(tmp_path) as store:
        assert store.took_over_from is None
    assert (tmp_path / LOCK_FILE).read_text() == ""  # released cleanly: nothing to take over

    # a sweep killed with -9 leaves its note behind, but the kernel has dropped its flock
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 999999, "host": "elsewhere", "started_at": "then"}))
    with RunStore(tmp_path) as store:
        assert store.took_over_from is not None and store.took_over_from["pid"] == 999999
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_append_without_the_lock_is_a_bug(tmp_path):
    with pytest.raises(RuntimeError):
        RunStore(tmp_path).append(record("t0"))


@pytest.mark.parametrize(("line", "problem"), [
    ('{"id": "bad", "status": "ok", "metrics": "oops", "axes": {}, "config": {}}', "'metrics' is not an object"),
    ('{"id": ["a"], "status": "ok", "metrics": {}, "axes": {}, "config": {}}', "'id' is not a non-empty string"),
    ('{"id": "bad", "status": "done", "metrics": {}, "axes": {}, "config": {}}', "'status' 'done' is not one of"),
    ('{"id": "bad", "status": "ok", "metrics": {"auc": "high"}, "axes": {}, "config": {}}',
     "metric 'auc' is not a number or null"),
    ('{"id": "bad", "status": "ok", "metrics": {"auc": true}, "axes": {}, "config": {}}',
     "metric 'auc' is not a number or null"),
    ('{"id": "bad", "status": "ok", "metrics": {}, "axes": [1], "config": {}}', "'axes' is not an object"),
    ('{"id": "bad", "status": "ok", "metrics": {}, "axes": {}, "config": "x"}', "'config' is not an object"),
    ('{"id": "bad", "status": "ok", "metrics": {}, "repeat": "0"}', "'repeat' is not a whole number"),
    ('[1, 2]', "a JSON list, not an object"),
])
def test_a_record_of_the_wrong_shape_is_skipped_with_a_warning_naming_its_line(tmp_path, line, problem):
    with RunStore(tmp_path) as store:
        store.append(record("t0", auc=0.5))
    with open(tmp_path / TRIALS_FILE, "a") as handle:
        handle.write(line + "\n")
    with RunStore(tmp_path) as store:
        store.append(record("t2", auc=None))
    records, warnings = read_records(tmp_path)
    assert [r["id"] for r in records] == ["t0", "t2"]
    assert len(warnings) == 1 and f"{TRIALS_FILE}:2: not a trial record ({problem}" in warnings[0]
