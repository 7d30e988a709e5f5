"""The prepared-data cache: reused, keyed by config and file content, and safe when processes race."""

from __future__ import annotations

import multiprocessing
import time

import pandas as pd
import pytest
import torch

from costbench.data import cache, load, synthetic
from costbench.data.load import load_data
from costbench.spec import DataConfig


def same(a, b) -> bool:
    return all(torch.equal(x, y) for name in ("train", "val", "test")
               for x, y in zip((*getattr(a, name).inputs(), getattr(a, name).label),
                               (*getattr(b, name).inputs(), getattr(b, name).label), strict=True))


def test_second_load_comes_from_the_cache(tmp_path, monkeypatch):
    cfg = DataConfig(rows=3000)
    first = load_data(cfg, tmp_path)
    assert first.summary["cache"]["hit"] is False
    assert len(list(tmp_path.glob("data-*.pt"))) == 1

    def no_generating(*args, **kwargs):
        raise AssertionError("generated again instead of reading the cache")

    monkeypatch.setattr(synthetic, "generate", no_generating)
    second = load_data(cfg, tmp_path)
    assert second.summary["cache"] == {"key": first.summary["cache"]["key"], "hit": True}
    assert same(first, second)
    assert second.schema == first.schema and second.bayes_auc == first.bayes_auc
    assert torch.equal(second.test.true_prob, first.test.true_prob)
    assert {k: v for k, v in second.summary.items() if k != "cache"} == \
        {k: v for k, v in first.summary.items() if k != "cache"}


def test_key_follows_the_data_config_and_nothing_else():
    base = DataConfig(rows=3000)
    assert cache.cache_key(base) == cache.cache_key(DataConfig(rows=3000))
    assert cache.cache_key(base) != cache.cache_key(DataConfig(rows=3001))
    assert cache.cache_key(base) != cache.cache_key(DataConfig(rows=3000, split={"val": 0.2, "test": 0.2}))
    assert cache.cache_key(base) != cache.cache_key(DataConfig(rows=3000, class_weight="balanced"))
    # keys that only matter for a user's file do not split the synthetic cache
    assert cache.cache_key(base) == cache.cache_key(DataConfig(rows=3000, dedupe=False))


def test_key_follows_the_file_content(tmp_path):
    frame = pd.DataFrame({"x": range(100), "Revenue": [True, False, False, False] * 25})
    path = tmp_path / "s.csv"
    frame.to_csv(path, index=False)
    cfg = DataConfig(source="csv", path=str(path), label="Revenue")
    key = cache.cache_key(cfg)
    data = load_data(cfg, tmp_path / "cache")
    assert data.summary["cache"]["key"] == key
    frame.assign(x=frame.x * 2).to_csv(path, index=False)  # same name, same size class, new content
    assert cache.cache_key(cfg) != key
    assert load_data(cfg, tmp_path / "cache").summary["cache"]["hit"] is False


def test_unreadable_cache_entry_is_prepared_again(tmp_path):
    cfg = DataConfig(rows=3000)
    first = load_data(cfg, tmp_path)
    entry = next(tmp_path.glob("data-*.pt"))
    entry.write_bytes(entry.read_bytes()[:1000])  # cut short, e.g. by hand
    again = load_data(cfg, tmp_path)
    assert again.summary["cache"]["hit"] is False and same(first, again)
    assert load_data(cfg, tmp_path).summary["cache"]["hit"] is True


def test_a_failed_write_leaves_no_entry_and_no_temp_file(tmp_path, monkeypatch):
    def half_written(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_written)
    with pytest.raises(OSError, match="disk full"):
        load_data(DataConfig(rows=3000), tmp_path)
    assert list(tmp_path.glob("data-*.pt")) == []
    assert list(tmp_path.glob(".data-*.tmp")) == []


def _load_in_process(cache_dir: str, start, out) -> None:
    prepare = load.prepare

    def slow_prepare(cfg):  # hold the race window open: without the lock both processes would prepare
        time.sleep(1.0)
        return prepare(cfg)

    load.prepare = slow_prepare
    start.wait()
    data = load_data(DataConfig(rows=20_000), cache_dir)
    out.put((data.summary["cache"]["hit"], float(data.train.numeric.sum()), int(data.test.items.sum())))


def test_two_processes_racing_prepare_once_and_read_the_same(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_load_in_process, args=(str(tmp_path), start, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    hits = sorted(hit for hit, _, _ in results)
    assert hits == [False, True]  # one prepared it, the other waited and read it
    assert results[0][1:] == results[1][1:]
    assert len(list(tmp_path.glob("data-*.pt"))) == 1 and list(tmp_path.glob(".data-*.tmp")) == []
    # and a reader in this process gets the very same tensors
    here = load_data(DataConfig(rows=20_000), tmp_path)
    assert here.summary["cache"]["hit"] is True
    assert (float(here.train.numeric.sum()), int(here.test.items.sum())) == results[0][1:]


def test_without_a_cache_folder_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = load.load_data(DataConfig(rows=3000), None)
    assert data.summary["cache"] is None
    assert list(tmp_path.iterdir()) == []


def test_a_process_waiting_for_another_s_build_says_so_and_reads_its_file(tmp_path):
    """The wait is announced (the executor stops the waiting trial's timeout clock) and ends in a hit."""
    import threading

    building, release, events = threading.Event(), threading.Event(), []

    def slow_build() -> dict:
        building.set()
        release.wait(10)
        return {"value": torch.tensor([1.0, 2.0])}

    def other_build() -> dict:
        raise AssertionError("the waiting side must read the first one's file, not build again")

    def cached(build, **callbacks):
        return cache.cached_file(tmp_path, "shared", 1, build, lambda v: {"format": 1, **v},
                                 lambda p: {"value": p["value"]}, lambda p: 8, **callbacks)

    first = threading.Thread(target=cached, args=(slow_build,))
    first.start()
    assert building.wait(10)
    waiter_result = []
    waiter = threading.Thread(target=lambda: waiter_result.append(cached(
        other_build, on_wait=lambda: (events.append("wait"), release.set()),
        on_acquired=lambda: events.append("acquired"))))
    waiter.start()
    waiter.join(20)
    first.join(20)
    assert events == ["wait", "acquired"]
    value, hit = waiter_result[0]
    assert hit and value["value"].tolist() == [1.0, 2.0]
