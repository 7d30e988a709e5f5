"""Results on disk: one run directory, its append-only ``trials.jsonl`` and the files beside it.

Only the sweep driver writes a run directory, and a lock makes sure there is only one driver.
Every record is one JSON line written by a single ``write`` and made durable with ``fsync``, so a
crash at any moment leaves at worst one torn last line, which every reader skips with a warning. A
write that the disk cannot take whole (full disk, quota) is cut back off, so no half record stays, and
becomes ``DiskFull``: one line naming the file and the space it needed. Every reader checks each
record's shape (``record_problem``), so a hand-edited or foreign line is skipped, never fatal.
A trial can have more than one record (a failed trial run again with ``--retry-failed``): the last
record of an id is the one that counts (see ``latest_records``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import numbers
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from costbench.errors import UserError
from costbench.record import STATUSES, utc_now

TRIALS_FILE = "trials.jsonl"
SWEEP_FILE = "sweep.yaml"  # the resolved sweep a run was made from; re-running it resumes the run
LOCK_FILE = ".costbench.lock"
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(UserError):
    """A write the filesystem could not take (no space left, quota exceeded): says where and how much."""

    def __init__(self, path: str | Path, needed: int | None, cause: OSError | None = None) -> None:
        self.path, self.needed = Path(path), needed
        what = "quota exceeded" if cause is not None and cause.errno == errno.EDQUOT else "no space left on device"
        need = f": writing it needs {human_size(needed)}" if needed is not None else ""
        free = free_bytes(self.path)
        have = f"{',' if need else ''} {human_size(free)} free there" if free is not None else ""
        super().__init__(f"{what}{need}{have}; free some space or write elsewhere (--out DIR)", where=str(path))


def no_space_error(exc: BaseException) -> OSError | None:
    """The ENOSPC/EDQUOT OSError behind ``exc`` (itself, or what it was raised from or during), or None.

    torch.save, pandas and matplotlib wrap the OSError in their own exceptions; the chain still holds it.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in NO_SPACE:
            return current
        current = current.__cause__ or current.__context__
    return None


def free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged writer may still use on the filesystem holding ``path`` (None if unknown)."""
    for candidate in (path, *path.parents):
        try:
            stat = os.statvfs(candidate)
        except OSError:
            continue
        return stat.f_bavail * stat.f_frsize
    return None


def human_size(n: int | None) -> str:
    """Bytes as a person reads them: '21.2 kB', '3.0 MB'."""
    if n is None:
        return "?"
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def read_records(run_dir: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every intact record of a run, in file order, and a warning for each line that is not one.

    A torn last line (power lost mid-write) or any other unparsable line is reported and skipped,
    never fatal: what was written intact is always readable.
    """
    path = Path(run_dir) / TRIALS_FILE
    records: list[dict[str, Any]] = []
    warnings: list[str] = []
    if not path.exists():
        return records, warnings
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                torn = not raw.endswith(b"\n")
                what = "torn last line (interrupted write)" if torn else "unreadable line"
                warnings.append(f"{path}:{number}: {what} ignored")
                continue
            problem = record_problem(record)
            if problem:
                warnings.append(f"{path}:{number}: not a trial record ({problem}), ignored")
                continue
            records.append(record)
    return records, warnings


_OPTIONAL: dict[str, tuple[type, ...]] = {"details": (dict,), "group": (str,), "reason": (str, type(None)),
                                           "repeat": (int,)}


def record_problem(record: Any) -> str | None:
    """What makes ``record`` unusable as a trial record, or None when every reader can rely on it.

    A reader counts statuses, ranks by metrics and groups by axes and config, so those must have the
    documented shape (see ``costbench.record``): an unknown status is never counted as ok.
    """
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    if not isinstance(record.get("id"), str) or not record["id"]:
        return "'id' is not a non-empty string"
    if record.get("status") not in STATUSES:
        return f"'status' {str(record.get('status'))[:40]!r} is not one of {', '.join(STATUSES)}"
    metrics = record.get("metrics")
    if not isinstance(metrics, dict):
        return "'metrics' is not an object"
    for name, value in metrics.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
            return f"metric {str(name)[:40]!r} is not a number or null"
    for key in ("axes", "config"):
        if not isinstance(record.get(key, {}), dict):
            return f"'{key}' is not an object"
    for key, types in _OPTIONAL.items():
        value = record.get(key)
        if key in record and (not isinstance(value, types) or isinstance(value, bool)):
            names = {str: "string", int: "whole number", dict: "object", type(None): "null"}
            return f"'{key}' is not a {' or '.join(names[t] for t in types)}"
    return None


def latest_records(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The record that counts for each trial id: the last one written (a retried failure is replaced)."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        latest.pop(record["id"], None)  # keep file order of the latest write
        latest[record["id"]] = record
    return latest


def encode_record(record: dict[str, Any]) -> bytes:
    """One record as one line of strict JSON. NaN/inf have no JSON form: they are written as null (n/a).

    numpy scalars are written as the numbers they hold; anything else JSON cannot hold becomes its str().
    """
    return (json.dumps(_finite(record), allow_nan=False, ensure_ascii=False, default=str) + "\n").encode()


def _finite(value: Any) -> Any:
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()  # a numpy scalar (np.float32 is no float) becomes the number it holds
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_text_atomic(path: Path, text: str) -> None:
    """Replace a small file whole (temp file + rename), so a reader never sees half of it."""
    data = text.encode("utf-8")
    write_atomic(path, lambda tmp: tmp.write_bytes(data), len(data))


def write_atomic(path: Path, write: Callable[[Path], object], needed: int | None = None) -> None:
    """Have ``write(tmp)`` write a temp file beside ``path``, then rename it into place: a reader sees
    the old file or the new one, never half of one. A full disk leaves the old file and no temp file
    and raises ``DiskFull`` (``needed``: the bytes it takes, when known)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        full = no_space_error(exc)
        if full is not None:
            raise DiskFull(path, needed, full) from None
        raise


class RunStore:
    """The single writer of a run directory: holds its lock and appends records durably.

    Use as a context manager; entering takes the lock (a ``UserError`` naming the other sweep if it
    is held) and leaving releases it. The lock is an ``flock`` on a file in the run directory, so the
    kernel drops it when its holder dies, even by ``kill -9``: a stale lock is simply taken over.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.trials_path = self.run_dir / TRIALS_FILE
        self.lock_path = self.run_dir / LOCK_FILE
        self.took_over_from: dict[str, Any] | None = None
        self._lock: IO[str] | None = None
        self._trials_fd: int | None = None

    def __enter__(self) -> RunStore:
        self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lock(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(handle)
            handle.close()
            raise UserError(
                f"another sweep is writing this run directory ({_describe(holder)}); wait for it to "
                "finish or stop it, or write elsewhere with --out DIR or --fresh",
                where=str(self.run_dir),
            ) from None
        previous = _read_holder(handle)
        if previous and previous.get("pid") != os.getpid():
            self.took_over_from = previous  # its holder died without releasing: flock was freed
        handle.seek(0)
        handle.truncate()
        note = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started_at": utc_now(),
                           "argv": sys.argv}) + "\n"
        try:
            handle.write(note)
            handle.flush()
        except OSError as exc:
            with contextlib.suppress(OSError):  # close flushes again and fails, but closes (and unlocks)
                handle.close()
            if exc.errno in NO_SPACE:
                raise DiskFull(self.lock_path, len(note.encode()), exc) from None
            raise
        self._lock = handle

    def append(self, record: dict[str, Any]) -> None:
        """Append one record as one line, on disk before this returns (write + fsync).

        The line goes in one ``write``, so a reader sees all of it or none; a write the disk cannot
        take whole is cut back off (``DiskFull``), so the file never keeps half a record.
        """
        if self._lock is None:
            raise RuntimeError("RunStore.append needs the run directory's lock; use `with RunStore(...)`")
        if self._trials_fd is None:
            self._trials_fd = self._open_trials()
        _append_whole(self._trials_fd, encode_record(record), self.trials_path)

    def _open_trials(self) -> int:
        """Open for appending; a torn last line is first ended, so the next record stands on its own."""
        created = not self.trials_path.exists()
        try:
            fd = os.open(self.trials_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno in NO_SPACE:
                raise DiskFull(self.trials_path, None, exc) from None
            raise
        size = os.fstat(fd).st_size
        if size:
            with open(self.trials_path, "rb") as handle:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":
                    _append_whole(fd, b"\n", self.trials_path)
        if created:
            dir_fd = os.open(self.run_dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the new file's name survives a power cut too
            finally:
                os.close(dir_fd)
        return fd

    def close(self) -> None:
        if self._trials_fd is not None:
            os.close(self._trials_fd)
            self._trials_fd = None
        if self._lock is not None:
            self._lock.seek(0)
            self._lock.truncate()  # an empty lock file means: released cleanly
            self._lock.flush()
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


def _append_whole(fd: int, data: bytes, path: Path) -> None:
    """Write ``data`` at the end of ``fd`` in one ``write`` and fsync it; on a short or failed write
    (full disk, quota), cut the file back to its old size and raise ``DiskFull``."""
    size = os.fstat(fd).st_size
    try:
        written = os.write(fd, data)
        if written != len(data):  # a regular file takes less than asked only when it is out of space
            raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)", str(path))
        os.fsync(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):  # if even this fails, a reader skips the torn line with a warning
            os.ftruncate(fd, size)
        if exc.errno in NO_SPACE:
            raise DiskFull(path, len(data), exc) from None
        raise


def _read_holder(handle: IO[str]) -> dict[str, Any] | None:
    handle.seek(0)
    text = handle.read().strip()
    if not text:
        return None
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return {"raw": text[:200]}
    return holder if isinstance(holder, dict) else {"raw": text[:200]}


def _describe(holder: dict[str, Any] | None) -> str:
    if not holder or "pid" not in holder:
        return "its holder did not say who it is"
    command = " ".join(Path(holder["argv"][0]).name if i == 0 else a for i, a in enumerate(holder.get("argv") or []))
    started = holder.get("started_at", "?")
    return f"pid {holder['pid']} on {holder.get('host', '?')}, started {started}" + (
        f": {command}" if command else "")
