"""What a run directory says about itself, read without torch and without re-expanding the sweep.

``run.json`` (written by the driver at sweep start) names the sweep, its description, axes, objectives and
the ids of the trials of the sweep as it now stands. Runs made before it existed (costbench < 0.2) only have
``sweep.yaml``: name, description, objectives and axes come from it as plain YAML, and which trials are
missing is unknown. Environments are ``environments/<env_id>.json`` (schema 2 records) or the one
``environment.json`` of older runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from costbench.record import SCHEMA_VERSION as RECORD_SCHEMA  # the newest record this costbench reads
from costbench.run_files import ENVIRONMENTS_DIR, RUN_FILE, RUN_SCHEMA
from costbench.spec.schema import DEFAULT_OBJECTIVES  # the model's own memory, not the process's
from costbench.store import SWEEP_FILE

OLD_ENVIRONMENT_FILE = "environment.json"
OLD_RUN_NOTE = "missing trials unknown (run made by costbench < 0.2)"


@dataclass
class RunInfo:
    """The sweep a run was made from, as far as the run directory tells."""

    name: str | None = None
    description: str = ""
    objectives: list[str] = field(default_factory=lambda: list(DEFAULT_OBJECTIVES))
    axes: list[str] = field(default_factory=list)
    trial_ids: list[str] | None = None  # None: unknown (no run.json)
    repeats: int = 1
    search: dict[str, Any] | None = None  # the sweep's search section: the run is a search
    costbench: str | None = None
    notes: list[str] = field(default_factory=list)


def read_run_info(run_dir: Path) -> RunInfo:
    """run.json when present, else the plain YAML of sweep.yaml, else only what the records show."""
    path = run_dir / RUN_FILE
    if path.exists():
        return _from_run_json(path)
    sweep = run_dir / SWEEP_FILE
    if sweep.exists():
        return _from_sweep_yaml(sweep)
    return RunInfo(notes=[f"{run_dir / RUN_FILE} and {SWEEP_FILE} not found: {OLD_RUN_NOTE}"])


def _mapping(path: Path, missing_note: str) -> tuple[dict[str, Any] | None, RunInfo]:
    """The file as a mapping (JSON or YAML: YAML reads both) and a RunInfo with its common fields.

    Where the file cannot be read as a mapping, None and a RunInfo that says so.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        return None, RunInfo(notes=[f"cannot read {path} ({type(exc).__name__}); {missing_note}"])
    if not isinstance(data, dict):
        return None, RunInfo(notes=[f"{path} is not a mapping; {missing_note}"])
    info = RunInfo(name=_text(data.get("name")), description=_text(data.get("description")) or "")
    if _strings(data.get("objectives")):
        info.objectives = list(data["objectives"])
    if isinstance(data.get("repeats"), int):
        info.repeats = data["repeats"]
    return data, info


def _from_run_json(path: Path) -> RunInfo:
    data, info = _mapping(path, "missing trials unknown")
    if data is None:
        return info
    info.costbench = _text(data.get("costbench"))
    schema = data.get("schema")
    if isinstance(schema, int) and schema > RUN_SCHEMA:
        info.notes.append(f"{path} has schema {schema}, newer than this costbench reads ({RUN_SCHEMA}); "
                          "upgrade costbench to read it fully")
    info.axes = list(data["axes"]) if _strings(data.get("axes")) else []
    info.search = data["search"] if isinstance(data.get("search"), dict) else None
    info.trial_ids = list(data["trial_ids"]) if _strings(data.get("trial_ids"), empty=True) else None
    if info.trial_ids is None:
        info.notes.append(f"{path} lists no trial_ids; missing trials unknown")
    return info


def _from_sweep_yaml(path: Path) -> RunInfo:
    data, info = _mapping(path, OLD_RUN_NOTE)
    if data is None:
        return info
    info.notes.append(OLD_RUN_NOTE)
    grid = data.get("grid")
    info.axes = [str(k) for k in grid] if isinstance(grid, dict) else []
    return info


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _strings(value: Any, empty: bool = False) -> bool:
    return isinstance(value, list) and (empty or bool(value)) and all(isinstance(v, str) for v in value)


def record_env_key(record: dict[str, Any]) -> str | None:
    """The environment a record names: its ``env_id`` (schema 2) or the old shared environment file."""
    env_id = record.get("env_id")
    if isinstance(env_id, str) and env_id:
        return env_id
    return OLD_ENVIRONMENT_FILE if record.get("environment") else None


def read_environments(run_dir: Path, keys: list[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """{key: environment} for the keys given (env ids, or 'environment.json'), and a note for each missing."""
    found: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for key in dict.fromkeys(keys):
        path = run_dir / (key if key == OLD_ENVIRONMENT_FILE else f"{ENVIRONMENTS_DIR}/{key}.json")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            notes.append(f"environment {key}: {path} is missing or unreadable")
            continue
        if isinstance(data, dict):
            found[key] = data
    return found, notes


def newer_records(records: list[dict[str, Any]]) -> str | None:
    """A note when some records come from a newer costbench than this one reads."""
    newer = sorted({s for r in records if isinstance(s := r.get("schema"), int) and s > RECORD_SCHEMA})
    if not newer:
        return None
    count = sum(1 for r in records if r.get("schema") in newer)
    return (f"{count} record(s) have schema {', '.join(map(str, newer))}, newer than this costbench reads "
            f"({RECORD_SCHEMA}); upgrade costbench: fields it does not know are ignored")
