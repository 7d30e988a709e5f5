"""A run directory as MLflow runs: one per trial, under one parent run per sweep that holds the report files.

The trial id is the key: a trial already exported (tag ``costbench.trial_id`` under the same parent) is
updated in place, never logged twice, so exporting again after a resumed sweep, or while ``costbench sweep
--track mlflow`` logs records as they arrive, leaves one MLflow run per trial. Ranks and the pick come
from the report (``build_report`` reads only the run directory), so MLflow shows the same front as
``costbench report``. Without ``--tracking-uri`` the store is ``mlflow.db`` (SQLite, MLflow's default
backend) with artifacts in ``mlartifacts/``, both inside the run directory: offline, next to the records.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from costbench.errors import UserError

INSTALL_HINT = 'MLflow is not installed: pip install "costbench[mlflow]"'
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
ARTIFACT_SUFFIXES = (".csv", ".md", ".html", ".png", ".svg", ".json", ".yaml")
# MLflow's own limits (mlflow.utils.validation): a longer value is refused, not truncated
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
NOT_RANKED = "n/a"
STATUS = {"ok": "FINISHED", "failed": "FAILED", "skipped": "KILLED"}  # MLflow has no "skipped"
_BAD_NAME_CHARS = re.compile(r"[^\w./\- :]")


def metric_name(name: str) -> str:
    """A costbench metric name as MLflow accepts it: 'p99_ms@64' -> 'p99_ms_at_64' (MLflow allows
    alphanumerics, '_', '-', '.', ' ', ':' and '/')."""
    return _BAD_NAME_CHARS.sub("_", name.replace("@", "_at_"))


def trial_params(record: dict[str, Any]) -> dict[str, str]:
    """The resolved config, flattened ('train.batch_size'), plus any axis that is not a config key.

    Values are text as MLflow stores them: strings as they are, anything else as JSON. A value longer
    than MLflow takes is left out (it is in trials.jsonl).
    """
    from costbench.report.rows import flatten

    flat = flatten(record.get("config") or {})
    for axis, value in (record.get("axes") or {}).items():
        flat.setdefault(axis, value)
    params = {}
    for key, value in flat.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if len(text) <= MAX_PARAM_VALUE:
            params[metric_name(key)] = text
    return params


def trial_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The record's numeric metrics under MLflow-safe names; n/a (None, NaN) is left out, never logged."""
    metrics = {}
    for name, value in (record.get("metrics") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            metrics[metric_name(name)] = float(value)
    return metrics


def default_tracking_uri(run_dir: Path) -> str:
    """``sqlite:///<run dir>/mlflow.db``: MLflow's default backend, local and offline."""
    return f"sqlite:///{(run_dir / DB_FILE).resolve()}"


def _millis(timestamp: Any) -> int | None:
    if not isinstance(timestamp, str):
        return None
    try:
        return int(datetime.fromisoformat(timestamp).timestamp() * 1000)
    except ValueError:
        return None


def _quote(value: str) -> str:
    """A value in an MLflow search filter."""
    return f'"{value}"' if "'" in value else f"'{value}'"


@dataclass
class Ranking:
    """What the report says of one record: its front rank (0 = not ranked), whether it is the pick, flags."""

    rank: int = 0
    pick: bool = False
    flags: list[str] = field(default_factory=list)


@dataclass
class ExportSummary:
    """What one export did, for the command's closing lines."""

    tracking_uri: str
    experiment: str
    parent_run_id: str
    created: int = 0
    updated: int = 0
    artifacts: list[str] = field(default_factory=list)


class MlflowExport:
    """One run directory's MLflow experiment and parent run; logs trial records into it by trial id."""

    def __init__(self, run_dir: str | Path, tracking_uri: str | None = None, experiment: str | None = None,
                 sweep_name: str | None = None) -> None:
        try:
            from mlflow import MlflowClient
        except ImportError:
            raise UserError(INSTALL_HINT) from None
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # "Creating initial MLflow database tables..."
        self.run_dir = Path(run_dir)
        self.tracking_uri = tracking_uri or default_tracking_uri(self.run_dir)
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        self.experiment = experiment or sweep_name or self.run_dir.resolve().name
        self.experiment_id = self._experiment_id(artifacts_here=tracking_uri is None)
        self.parent_run_id = self._parent_run()
        self.runs = self._trial_runs()  # trial id -> MLflow run id
        self.created = self.updated = 0

    def _experiment_id(self, artifacts_here: bool) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return str(found.experiment_id)
        location = (self.run_dir / ARTIFACTS_DIR).resolve().as_uri() if artifacts_here else None
        return str(self.client.create_experiment(self.experiment, artifact_location=location))

    def _search(self, filter_string: str) -> list[Any]:
        runs, token = [], None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string, max_results=1000, page_token=token)
            runs += list(page)
            token = page.token
            if not token:
                return runs

    def _parent_run(self) -> str:
        where = str(self.run_dir.resolve())
        found = self._search(f"tags.`costbench.kind` = 'sweep' and tags.`costbench.run_dir` = {_quote(where)}")
        if found:
            return str(found[0].info.run_id)
        from costbench import __version__

        run = self.client.create_run(self.experiment_id, run_name=self.experiment,
                                     tags={"costbench.kind": "sweep", "costbench.run_dir": where,
                                           "costbench.version": __version__})
        return str(run.info.run_id)

    def _trial_runs(self) -> dict[str, str]:
        found = self._search(f"tags.`mlflow.parentRunId` = '{self.parent_run_id}'")
        runs: dict[str, str] = {}
        for run in sorted(found, key=lambda r: r.info.start_time or 0):
            trial_id = run.data.tags.get("costbench.trial_id")
            if trial_id:
                runs.setdefault(trial_id, run.info.run_id)
        return runs

    def log_record(self, record: dict[str, Any], ranking: Ranking | None = None, version: str | None = None) -> str:
        """Create or update the MLflow run of this record's trial; returns its run id.

        Params are logged once (the trial id is a hash of the config, so they cannot change); metrics are
        logged at the record's finish time, so a re-export of the same record adds nothing and a newer record
        of the trial (a retried failure) becomes the latest value; tags and status are overwritten.
        """
        from mlflow.entities import Metric, Param, RunTag

        trial_id = str(record["id"])
        tags = self._tags(record, ranking, version)
        run_id = self.runs.get(trial_id)
        if run_id is None:
            run = self.client.create_run(self.experiment_id, start_time=_millis(record.get("started_at")),
                                         run_name=self._run_name(record), tags=tags)
            run_id = self.runs[trial_id] = str(run.info.run_id)
            have: dict[str, str] = {}
            self.created += 1
        else:
            have = self.client.get_run(run_id).data.params
            self.updated += 1
        finished = _millis(record.get("finished_at")) or _millis(record.get("started_at")) or 0
        params = [Param(k, v) for k, v in trial_params(record).items() if k not in have]
        metrics = [Metric(k, v, finished, 0) for k, v in trial_metrics(record).items()]
        self.client.log_batch(run_id, metrics=metrics, params=params,
                              tags=[RunTag(k, v) for k, v in tags.items()])
        self.client.set_terminated(run_id, STATUS.get(str(record.get("status")), "FAILED"),
                                   end_time=_millis(record.get("finished_at")))
        return run_id

    def _tags(self, record: dict[str, Any], ranking: Ranking | None, version: str | None) -> dict[str, str]:
        ranked = ranking is not None and ranking.rank > 0
        tags = {
            "mlflow.parentRunId": self.parent_run_id,
            "costbench.kind": "trial",
            "costbench.trial_id": str(record["id"]),
            "costbench.group": str(record.get("group") or record["id"]),
            "costbench.repeat": str(record.get("repeat", 0)),
            "costbench.status": str(record.get("status")),
            "costbench.reason": str(record.get("reason") or "")[:MAX_TAG_VALUE],
            "costbench.pareto_rank": str(ranking.rank) if ranked and ranking else NOT_RANKED,
            "costbench.pick": "true" if ranking is not None and ranking.pick else "false",
            "costbench.flags": ", ".join(ranking.flags) if ranking else "",
            "costbench.env_id": str(record.get("env_id") or NOT_RANKED),
            "costbench.data_id": str(record.get("data_id") or NOT_RANKED),
            "costbench.axes": json.dumps(list(record.get("axes") or {})),
        }
        if version:
            tags["costbench.version"] = version
        return tags

    @staticmethod
    def _run_name(record: dict[str, Any]) -> str:
        axes = " ".join(str(v) for v in (record.get("axes") or {}).values())
        return f"{record['id']} {axes}".strip()

    def log_report(self, description: str, version: str | None) -> list[str]:
        """The parent run: the report's summary as its description, the report files as artifacts."""
        tags = {"mlflow.note.content": description[:MAX_TAG_VALUE]}
        if version:
            tags["costbench.version"] = version
        for key, value in tags.items():
            self.client.set_tag(self.parent_run_id, key, value)
        files = sorted(p for p in self.run_dir.iterdir() if p.is_file() and p.suffix in ARTIFACT_SUFFIXES)
        for path in files:
            self.client.log_artifact(self.parent_run_id, str(path))
        self.client.set_terminated(self.parent_run_id, "FINISHED")
        return [p.name for p in files]


def rankings(report: Any) -> dict[tuple[str, str | None], Ranking]:
    """(group, data_id) -> the report row's rank, pick and flags (repeats share their row)."""
    return {(row.group, row.data_id): Ranking(row.rank, row.pick, list(row.flags)) for row in report.rows}


def record_key(record: dict[str, Any]) -> tuple[str, str | None]:
    data_id = record.get("data_id")
    return str(record.get("group") or record["id"]), data_id if isinstance(data_id, str) and data_id else None


def export_run(run_dir: str | Path, tracking_uri: str | None = None, experiment: str | None = None) -> ExportSummary:
    """Export every trial of a run directory (the latest record of each id, any status) and its report."""
    from costbench.report.build import build_report
    from costbench.report.decision import decision

    report = build_report(run_dir)  # checks the run directory first: a wrong path is one line, before MLflow
    export = MlflowExport(run_dir, tracking_uri, experiment, sweep_name=report.name)
    return _export(export, report, decision)


def _export(export: MlflowExport, report: Any, decision: Any) -> ExportSummary:
    from costbench.report.rundir import read_run_info

    version = read_run_info(export.run_dir).costbench
    ranks = rankings(report)
    for record in [*report.records, *report.earlier]:
        export.log_record(record, ranks.get(record_key(record)), _record_version(report, record) or version)
    headline, detail = decision(report)
    artifacts = export.log_report("\n\n".join([f"**{headline}**; {detail}.", *report.summary]), version)
    return ExportSummary(export.tracking_uri, export.experiment, export.parent_run_id, export.created,
                         export.updated, artifacts)


def _record_version(report: Any, record: dict[str, Any]) -> str | None:
    """The costbench version the trial ran under, from its environment file."""
    from costbench.report.rundir import record_env_key

    env = report.environments.get(record_env_key(record) or "")
    return env.get("costbench") if isinstance(env, dict) else None


class SweepTracker:
    """`costbench sweep --track mlflow`: each record as it arrives, then the whole run with ranks at the end.

    Tracking never stops a sweep: the first MLflow error is one warning and tracking stops; the records
    are safe in trials.jsonl and `costbench export mlflow` sends them later.
    """

    def __init__(self, run_dir: Path, sweep_name: str, warn: Any) -> None:
        self.export: MlflowExport | None = MlflowExport(run_dir, sweep_name=sweep_name)
        self.warn = warn

    def record(self, record: dict[str, Any]) -> None:
        self._guard(lambda e: e.log_record(record))

    def finish(self, report: Any = None) -> None:
        """Export the whole run with ranks; ``report``: the sweep's own, when it built one (else built here)."""
        from costbench.report.build import build_report
        from costbench.report.decision import decision

        self._guard(lambda e: _export(e, report if report is not None else build_report(e.run_dir), decision))

    def _guard(self, action: Any) -> None:
        if self.export is None:
            return
        try:
            action(self.export)
        except Exception as exc:  # MLflow's errors have no common base we can rely on across stores
            self.export = None
            self.warn(f"MLflow tracking stopped ({type(exc).__name__}: {exc}); the records are in trials.jsonl: "
                      f"`costbench export mlflow RUN_DIR` sends them later")
