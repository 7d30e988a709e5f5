"""What a trial's data *is*, as a short hash: part of the trial id, so changed data re-runs its trials.

For a CSV or Parquet source it is the sha256 of the file bytes (``path`` and ``test_path``); for
synthetic data, of the generator's parameters and version. Torch- and pandas-free, because the sweep
loader computes it for every trial before anything runs.
"""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import Any

GENERATOR_VERSION = 1  # bump when synthetic.generate's output changes for a given config (re-runs, re-caches)
SYNTHETIC_KEYS = ("rows", "positive_rate", "noise", "sequence_length", "n_items", "n_categories", "seed")
MISSING = "missing"  # a data file that cannot be hashed now; the data check reports why before any trial

_digests: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str | None:
    """sha256 of a regular file's bytes, streamed and cached per (path, size, mtime_ns) in this process.

    None for anything that is not a readable regular file (missing, a directory, /dev/zero, a FIFO):
    hashing one must never hang or fail here; the data check gives the user's error.
    """
    try:
        info = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    key = (str(path.resolve()), info.st_size, info.st_mtime_ns)
    if key not in _digests:
        digest = hashlib.sha256()
        try:
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError:
            return None
        _digests[key] = digest.hexdigest()
    return _digests[key]


def data_fingerprint(data: dict[str, Any]) -> str:
    """A 16-hex-digit id of a (validated, JSON-dumped) data config's content, or ``MISSING``."""
    if data["source"] == "synthetic":
        content: dict[str, Any] = {k: data[k] for k in SYNTHETIC_KEYS}
        content["generator"] = GENERATOR_VERSION
    else:
        content = {"source": data["source"]}
        for key in ("path", "test_path"):
            if data.get(key) is not None:
                digest = file_sha256(Path(data[key]).expanduser())
                if digest is None:
                    return MISSING
                content[key] = digest
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))  # stable across processes, unlike hash()
    return hashlib.sha256(text.encode()).hexdigest()[:16]
