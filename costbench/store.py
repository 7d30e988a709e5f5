"""Results on disk: one run directory, its append-only ``trials.jsonl`` and the files beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TRIALS_FILE = "trials.jsonl"


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
            if not isinstance(record, dict) or "id" not in record or "status" not in record:
                warnings.append(f"{path}:{number}: not a trial record, ignored")
                continue
            records.append(record)
    return records, warnings
