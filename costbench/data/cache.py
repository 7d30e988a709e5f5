"""Prepared data on disk, so the trials of a sweep prepare it once.

The key is a hash of the data config (only the keys that change the data) and of the content of the
source file(s), so editing the file, not just renaming it, is what makes a new entry. One entry is one
``data-<key>.pt`` file written by ``torch.save`` to a temporary file in the same folder and moved into
place with ``os.replace``: a reader sees the whole file or none. A per-key lock file (``flock``) makes a
second process that arrives while the first is preparing wait for it and then read its result, instead
of preparing the same data again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from costbench.data import PreparedData, Schema, Split
from costbench.data.fingerprint import GENERATOR_VERSION, SYNTHETIC_KEYS, file_sha256
from costbench.data.tabular import check_file, resolve_path
from costbench.errors import UserError
from costbench.store import DiskFull, no_space_error

if TYPE_CHECKING:
    from costbench.spec import DataConfig

FORMAT_VERSION = 2  # bump when preparation or the file layout changes (old entries are then unused)
SHARED_KEYS = ("source", "split", "class_weight", "oversample", "numeric_transform", "rare_min_count")
TABULAR_KEYS = ("path", "label", "positive", "categorical", "numeric", "drop", "log1p", "test_path", "dedupe")
SPLIT_FIELDS = ("numeric", "categorical", "items", "item_categories", "label", "true_prob")
IDS = ("categorical", "items", "item_categories")  # int64 in memory, int32 on disk: half the bytes to write
T = TypeVar("T")


def file_digest(path: Path, source: str, key: str) -> str:
    check_file(path, source, key)
    digest = file_sha256(path)
    if digest is None:
        raise UserError(f"is not a regular file; {key} must name a {source} file", where=str(path))
    return digest


def cache_key(cfg: DataConfig) -> str:
    """A stable key for a DataConfig: its data-changing keys plus the content of its file(s)."""
    dump = cfg.model_dump(mode="json")
    synthetic = cfg.source == "synthetic"
    content: dict[str, Any] = {k: dump[k] for k in SHARED_KEYS + (SYNTHETIC_KEYS if synthetic else TABULAR_KEYS)}
    content["format"] = FORMAT_VERSION
    if synthetic:
        content["generator"] = GENERATOR_VERSION
    else:
        content["path_sha256"] = file_digest(resolve_path(cfg.path), cfg.source, "data.path")
        if cfg.test_path:
            content["test_path_sha256"] = file_digest(resolve_path(cfg.test_path), cfg.source, "data.test_path")
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def load_or_build(cache_dir: Path, key: str, build: Callable[[], PreparedData]) -> tuple[PreparedData, bool]:
    """The cached entry for ``key``, or ``build()``'s result, stored. True when it came from the cache."""
    return cached_file(cache_dir, f"data-{key}", FORMAT_VERSION, build, _to_payload, _from_payload,
                       _payload_bytes)


def cached_file(cache_dir: Path, stem: str, version: int, build: Callable[[], T],
                to_payload: Callable[[T], dict[str, Any]], from_payload: Callable[[dict[str, Any]], T],
                payload_bytes: Callable[[dict[str, Any]], int], on_wait: Callable[[], None] | None = None,
                on_acquired: Callable[[], None] | None = None) -> tuple[T, bool]:
    """``<stem>.pt`` in ``cache_dir``, or ``build()`` run once under ``<stem>.lock`` and written atomically:
    a process arriving while another builds waits for it and reads its file (``on_wait`` is called when
    it starts waiting, ``on_acquired`` when the wait ends). True on a hit. The payload carries
    ``"format": version``; a file of another version, or unreadable, is built again.

    The data cache and the distillation teachers (``costbench.compress.teacher``) share it."""
    path = cache_dir / f"{stem}.pt"

    def load(path: Path) -> T | None:
        if not path.exists():
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            return from_payload(payload) if payload.get("format") == version else None
        except Exception:  # unreadable or from another version: build again and overwrite it
            return None

    value = load(path)
    if value is not None:
        return value, True
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the cache folder: {exc.strerror or exc}; pick another cache "
                        "folder", where=str(cache_dir)) from None
    with _locked(cache_dir / f"{stem}.lock", on_wait, on_acquired):
        value = load(path)  # another process may have built it while this one waited
        if value is not None:
            return value, True
        for stale in cache_dir.glob(f".{stem}.*.tmp"):  # left by a process killed mid-write
            stale.unlink(missing_ok=True)
        value = build()
        _save_atomic(to_payload(value), path, payload_bytes)
    return value, False


@contextlib.contextmanager
def _locked(path: Path, on_wait: Callable[[], None] | None = None,
            on_acquired: Callable[[], None] | None = None) -> Iterator[None]:
    try:
        import fcntl

        from costbench.locks import lock_exclusive
    except ImportError:  # no flock (Windows): two processes may both build; the atomic write keeps it safe
        yield
        return
    with path.open("a+b") as handle:
        lock_exclusive(handle.fileno(), on_wait, on_acquired)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _save_atomic(payload: dict[str, Any], path: Path, payload_bytes: Callable[[dict[str, Any]], int]) -> None:
    """Temp file + fsync + rename; a full disk leaves no temp file and raises ``DiskFull``."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    except OSError as exc:
        if no_space_error(exc):
            raise DiskFull(path, payload_bytes(payload), exc) from None
        raise
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        full = no_space_error(exc)  # torch.save raises a RuntimeError raised during the OSError
        if full is not None:
            raise DiskFull(path, payload_bytes(payload), full) from None
        raise


def _payload_bytes(payload: dict[str, Any]) -> int:
    """About what the entry takes on disk: its tensors' bytes (the rest is small)."""
    return sum(t.numel() * t.element_size() for split in payload["splits"].values() for t in split.values()
               if t is not None)


def pack_split(split: Split) -> dict[str, torch.Tensor | None]:
    """A split as the tensors ``torch.save`` writes (ids as int32); ``unpack_split`` reverses it."""
    return {f: _pack(f, getattr(split, f)) for f in SPLIT_FIELDS}


def unpack_split(fields: dict[str, torch.Tensor | None]) -> Split:
    return Split(**{f: t.to(torch.int64) if f in IDS and t is not None else t for f, t in fields.items()})


def _to_payload(data: PreparedData) -> dict[str, Any]:
    splits = {name: pack_split(getattr(data, name)) for name in ("train", "val", "test")}
    return {"format": FORMAT_VERSION, "schema": dataclasses.asdict(data.schema), "splits": splits,
            "pos_weight": data.pos_weight, "bayes_auc": data.bayes_auc, "summary": data.summary}


def _from_payload(payload: dict[str, Any]) -> PreparedData:
    splits = {name: unpack_split(fields) for name, fields in payload["splits"].items()}
    return PreparedData(schema=Schema(**payload["schema"]), train=splits["train"], val=splits["val"],
                        test=splits["test"], pos_weight=payload["pos_weight"], bayes_auc=payload["bayes_auc"],
                        summary=payload["summary"])


def _pack(field: str, tensor: torch.Tensor | None) -> torch.Tensor | None:
    if field in IDS and tensor is not None:  # ids index embedding tables: far below 2**31
        return tensor.to(torch.int32)
    return tensor
