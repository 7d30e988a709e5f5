"""The files beside ``trials.jsonl`` that make a run directory self-describing, written by the driver only.

- ``run.json``: what the sweep expects as it now stands (trial ids, axes, objectives, name, description,
  executor settings). The report reads it instead of re-expanding the sweep, so it never imports torch.
- ``environments/<env_id>.json``: each distinct environment the trials ran in, stored once. A record
  arrives from its trial with the environment it collected where it ran; the driver stores it and keeps
  only ``env_id`` in the record. A record made without one (its process died) gets the driver's own
  environment, marked ``"collected_in": "driver"``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from costbench.record import ENVIRONMENT_IN_TRANSIT, environment_id, utc_now
from costbench.spec import Sweep, Trial
from costbench.store import write_text_atomic

RUN_FILE = "run.json"
RUN_SCHEMA = 1
ENVIRONMENTS_DIR = "environments"


def write_run_file(run_dir: Path, sweep: Sweep, trials: list[Trial], executor: dict[str, Any]) -> Path:
    """``run.json`` for the sweep as it now stands; rewritten by every run of the sweep (a resume too)."""
    from costbench import __version__

    spec = sweep.spec
    content = {
        "schema": RUN_SCHEMA,
        "name": spec.name,
        "description": spec.description,
        "sweep_file": "sweep.yaml",
        "trial_ids": [t.id for t in trials],
        "axes": list(dict.fromkeys([*spec.grid, *(key for point in spec.include for key in point)])),
        "objectives": list(spec.objectives),
        "repeats": spec.repeats,
        "search": None if spec.search is None else spec.search.model_dump(mode="json"),  # the report's hypervolume
        "executor": executor,
        "written_at": utc_now(),
        "costbench": __version__,
    }
    path = run_dir / RUN_FILE
    write_text_atomic(path, json.dumps(content, indent=2) + "\n")
    return path


def store_environment(run_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """The record as written: its environment moved to ``environments/<env_id>.json`` (once per id)."""
    environment = record.pop(ENVIRONMENT_IN_TRANSIT, None)
    if not isinstance(environment, dict):
        environment = {**_driver_environment(), "collected_in": "driver"}
    env_id = environment_id(environment)
    path = run_dir / ENVIRONMENTS_DIR / f"{env_id}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(environment, indent=2, default=str) + "\n")
    return {**record, "env_id": env_id}


@cache
def _driver_environment() -> dict[str, Any]:
    from costbench.measure.environment import trial_environment

    return trial_environment()
