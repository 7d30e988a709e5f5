"""The sweep driver: picks the run directory, resumes, runs the remaining trials, and keeps every record.

Only this driver writes a run directory (records arrive from the executor as events), so the store
has one writer, and Ctrl-C or a crash anywhere leaves every finished record intact on disk.

Testing hook: the environment variable ``COSTBENCH_TRIAL_FN`` ("module:function") replaces the trial
function every executor calls (default ``costbench.trial:run_trial``), so tests can drive real sweeps
with trials that crash, hang or raise. It is not a user-facing option.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shlex
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from costbench.errors import UserError, warn
from costbench.executors import TRIAL_FUNCTION, Executor, make_executor
from costbench.export import make_tracker
from costbench.progress import SweepProgress
from costbench.record import utc_now
from costbench.resources import ResourcePlan, plan_resources
from costbench.run_files import RUN_FILE, store_environment, write_run_file
from costbench.spec import DataConfig, Sweep, Trial, canonical_json, machine_warnings
from costbench.store import (
    SWEEP_FILE,
    DiskFull,
    RunStore,
    encode_record,
    latest_records,
    no_space_error,
    read_records,
    write_text_atomic,
)

TRIAL_FN_ENV = "COSTBENCH_TRIAL_FN"
# Exit statuses (README "Exit codes"; `costbench sweep --help`): 0 every trial ok or skipped, 1 some
# trial failed (0 with --allow-failures) or --fail-fast stopped the sweep, 2 a user's mistake or a full
# disk, 128 + the signal when stopped by one: 130 Ctrl-C (SIGINT), 143 SIGTERM, 129 SIGHUP.
EXIT_OK, EXIT_FAILED, EXIT_USER_ERROR = 0, 1, 2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # each means: stop, keep what is done
DATA_SUMMARY_FILE = "data_summary.json"
DATA_CACHE_DIR = "data-cache"
RecordListener = Callable[[dict[str, Any]], None]  # told each record once it is in trials.jsonl


@dataclass
class SweepOptions:
    """The `costbench sweep` options; None means: take the sweep file's setting or the default."""

    out: Path | None = None
    workers: int | None = None
    executor: str | None = None
    address: str | None = None
    trial_timeout: float | None = None
    retries: int | None = None
    fail_fast: bool = False
    retry_failed: bool = False
    fresh: bool = False
    allow_failures: bool = False
    track: str | None = None  # "mlflow": log each record as it arrives (costbench.export)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP outside the trial loop: unwinds like Ctrl-C (locks released, temp files gone)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def run_sweep(sweep: Sweep, options: SweepOptions, console: Console, stderr: Console) -> int:
    """Run what is left of a sweep; returns the exit status (see EXIT_* above).

    SIGTERM and SIGHUP (a scheduler, systemd, ``kubectl delete``, a closed terminal) mean what Ctrl-C
    means: stop launching, end the running trials, keep every finished record, release the lock and
    print the command that resumes.
    """
    run_dir = choose_run_dir(sweep.spec.name, options.out, options.fresh)
    with _signals_raise():
        try:
            return _run_sweep(sweep, options, run_dir, console, stderr)
        except KeyboardInterrupt as exc:  # outside the trial loop (inside it, _stop_signals handles them)
            signum = getattr(exc, "signum", signal.SIGINT)
            stderr.print(f"interrupted ({signal.Signals(signum).name}); every record written so far is kept",
                         highlight=False)
            _say_resume_command(run_dir, options, sweep, stderr)
            return 128 + signum


def _run_sweep(sweep: Sweep, options: SweepOptions, run_dir: Path, console: Console, stderr: Console) -> int:
    for warning in machine_warnings(sweep.trials):
        warn(stderr, warning)
    trial_fn = os.environ.get(TRIAL_FN_ENV, TRIAL_FUNCTION)
    _check_importable(trial_fn)
    check_data(sweep.trials, asked_by=sweep.where("data"))
    trials = with_data_cache(sweep.trials, run_dir / DATA_CACHE_DIR)
    wanted = len(trials)  # the trials this sweep means to record
    with RunStore(run_dir) as store:
        if store.took_over_from:
            warn(stderr, f"took over the lock of a sweep that died "
                         f"(pid {store.took_over_from.get('pid')}, started {store.took_over_from.get('started_at')})")
        records, warnings = read_records(run_dir)
        for warning in warnings:
            warn(stderr, warning)
        kind = options.executor or sweep.spec.executor.kind
        plan = resource_plan(kind, trials, options.workers or sweep.spec.executor.workers, stderr)
        trials = [dataclasses.replace(t, resources=plan.for_trial(t, kind)) for t in trials]
        todo, counts, replanned = plan_resume(trials, latest_records(records), options.retry_failed)
        search = _make_search(sweep, plan, kind, run_dir, latest_records(records)) if sweep.spec.search else None
        if search is None:
            _say_resume(trials, records, counts, options.retry_failed, console)
            if replanned:
                console.print(f"re-running {replanned} trial(s) recorded with other threads than this run's plan "
                              "(their timings would not compare)", highlight=False)
        else:  # the trials recorded and the ones still to come are the search's, not the grid's corners
            counts = _say_search(search, latest_records(records), console)
            todo = trials if search.done < search.target else []  # the datasets to prepare; Optuna picks the points
        to_run = len(todo) if search is None else (search.target - search.done) * sweep.spec.repeats
        tracker = make_tracker(options.track, run_dir, sweep.spec.name, lambda note: warn(stderr, note))
        on_record = tracker.record if tracker is not None else None
        # made before the data is prepared: a local executor's forkserver imports meanwhile
        executor, settings = _make_executor(sweep, to_run, options, trial_fn, plan)
        try:
            write_sweep_file(run_dir, sweep)
            write_run_file(run_dir, sweep, trials if search is None else search.recorded_trials(), settings)
            if todo:
                show_data_summary(write_data_summary(run_dir, todo), console)
            if executor is not None and search is not None:  # Optuna picks the points that run
                outcome = _search(search, executor, store, counts, options, console, on_record)
            else:
                outcome = _run(executor, todo, store, counts, options, console, on_record) if executor else _Outcome()
        finally:
            if executor is not None:
                executor.close()
        if search is not None:  # the sweep is the points searched, not the whole grid
            wanted = search.target * sweep.spec.repeats  # a listed space smaller than n_trials has fewer
            trials = search.recorded_trials()
            write_run_file(run_dir, sweep, trials, settings)
        if executor is None:
            console.print("nothing to run: " + ("every trial of this sweep has a record" if search is None else
                          f"the search has its {search.target} point(s) recorded (raise --set search.n_trials=N "
                          "to go on)"), highlight=False)
    status = _finish(sweep, trials, wanted, run_dir, options, outcome, console, stderr)
    if tracker is not None:
        tracker.finish(outcome.report)  # every record again, now with its Pareto rank, and the report files
    return status


# ----------------------------------------------------------------------------------- run directory


def choose_run_dir(name: str, out: Path | None, fresh: bool) -> Path:
    """``--out`` or results/<name>; with ``--fresh`` the first unused <dir>-2, -3, ... (nothing is deleted)."""
    base = Path(out) if out is not None else Path("results") / name
    if base.exists() and not base.is_dir():
        raise UserError("is a file, not a run directory; choose another --out", where=str(base))
    if not fresh or not _is_used(base):
        return base
    n = 2
    while _is_used(base.with_name(f"{base.name}-{n}")):
        n += 1
    return base.with_name(f"{base.name}-{n}")


def _is_used(path: Path) -> bool:
    return path.exists() and any(path.iterdir())


def write_sweep_file(run_dir: Path, sweep: Sweep) -> None:
    """The resolved sweep (overrides applied, defaults filled in): re-running it resumes this run."""
    header = (f"# costbench: the resolved sweep of {sweep.path} (overrides and defaults applied),\n"
              f"# written {utc_now()}. Resume this run with: costbench sweep {run_dir / SWEEP_FILE} "
              f"--out {run_dir}\n")
    body = yaml.safe_dump(sweep.spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    write_text_atomic(run_dir / SWEEP_FILE, header + body)


def write_data_summary(run_dir: Path, trials: list[Trial]) -> list[dict[str, Any]]:
    """Prepare each distinct dataset once, in the driver, before any trial: the trials then only read
    the cache, and the run keeps a summary of what they were trained and tested on."""
    from costbench.data.load import load_data

    datasets = [
        {"config": trial.config["data"],
         "summary": load_data(DataConfig.model_validate(trial.config["data"]), trial.cache_dir).summary}
        for trial in distinct_datasets(trials)
    ]
    path = run_dir / DATA_SUMMARY_FILE
    write_text_atomic(path, json.dumps({"datasets": datasets}, indent=2, default=str) + "\n")
    return datasets


def show_data_summary(datasets: list[dict[str, Any]], console: Console) -> None:
    """One line per dataset: what the trials learn from, before they start."""
    for dataset in datasets:
        summary = dataset["summary"]
        rows, rate = summary["rows"], summary["positive_rate"]
        splits = ", ".join(f"{name} {rows[name]:,} ({rate[name]:.1%} buyers)" for name in ("train", "val", "test"))
        bayes = f"; best possible AUC {summary['bayes_auc']:.4f}" if summary.get("bayes_auc") else ""
        dropped = f"; {summary['duplicates_dropped']:,} duplicates dropped" if summary.get("duplicates_dropped") else ""
        source = summary.get("path") or summary["source"]
        console.print(f"data: {source}: {splits}{dropped}{bayes}", highlight=False)


# ----------------------------------------------------------------------------------- before the run


def _check_importable(trial_fn: str) -> None:
    module, sep, name = trial_fn.partition(":")
    try:
        found = bool(sep and name and module) and importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UserError(f"the trial function '{trial_fn}' cannot be found (expected module:function"
                        f"{f', set by {TRIAL_FN_ENV}' if TRIAL_FN_ENV in os.environ else ''})")


def distinct_datasets(trials: list[Trial]) -> list[Trial]:
    """The first trial of each distinct data config: data is checked and prepared once per dataset."""
    seen: dict[str, Trial] = {}
    for trial in trials:
        seen.setdefault(canonical_json(trial.config["data"]), trial)
    return list(seen.values())


def check_data(trials: list[Trial], asked_by: str | None = None) -> None:
    """Check each distinct data source once, so a bad file stops the sweep before any trial starts.

    ``asked_by`` (e.g. ``sweep.where("data")``) is added to the error, so it names the sweep file too.
    """
    from costbench.data.load import check_data as check_one

    for trial in distinct_datasets(trials):
        try:
            check_one(DataConfig.model_validate(trial.config["data"]))
        except UserError as exc:
            if asked_by is None:
                raise
            raise UserError(f"{exc}; named in {asked_by}") from None


def with_data_cache(trials: list[Trial], cache_dir: Path) -> list[Trial]:
    """Trials without a data cache prepare their data once per run directory, not once per trial."""
    path = str(cache_dir.resolve())
    return [t if t.cache_dir else dataclasses.replace(t, cache_dir=path) for t in trials]


def plan_resume(trials: list[Trial], latest: dict[str, dict[str, Any]],
                retry_failed: bool) -> tuple[list[Trial], Counter[str], int]:
    """The trials still to run, the counts of those already recorded (ok/failed/skipped), and how many
    are run again because their record was made with other threads than the trial's plan now gives.

    ``ok`` and ``skipped`` trials are done; ``failed`` ones are done unless ``retry_failed``.
    """
    todo, counts, replanned = [], Counter[str](), 0
    for trial in trials:
        record = latest.get(trial.id)
        status = record["status"] if record else None
        if status == "ok" and not _same_threads(record, trial):
            replanned += 1
            todo.append(trial)
        elif status in ("ok", "skipped") or (status == "failed" and not retry_failed):
            counts[status] += 1
        else:
            todo.append(trial)
    return todo, counts, replanned


def _same_threads(record: dict[str, Any], trial: Trial) -> bool:
    """A record made under the plan's threads (records from before resource plans count as the same)."""
    made = (record.get("resources") or {}).get("threads") if isinstance(record.get("resources"), dict) else None
    planned = (trial.resources or {}).get("threads")
    return made is None or planned is None or made == planned


def _say_resume(trials: list[Trial], records: list[dict[str, Any]], counts: Counter[str], retry_failed: bool,
                console: Console) -> None:
    done = sum(counts.values())
    if done:
        failed = (f", {counts['failed']} failed (run them again with --retry-failed)"
                  if counts["failed"] and not retry_failed else f", {counts['failed']} failed")
        console.print(f"resuming: {done} of {len(trials)} trial(s) already recorded "
                      f"({counts['ok']} ok, {counts['skipped']} skipped{failed})", highlight=False)
    other_data, not_in_sweep = stale_records(trials, records)
    if other_data:
        console.print(f"note: {other_data} recorded trial(s) ran on other data (the data file changed since); "
                      "their configurations run again, the old records are kept", highlight=False)
    if not_in_sweep:
        console.print(f"note: trials.jsonl also holds {not_in_sweep} trial(s) that are not in this sweep "
                      "(the sweep file changed); their records are kept", highlight=False)


def stale_records(trials: list[Trial], records: list[dict[str, Any]]) -> tuple[int, int]:
    """Recorded trial ids this sweep no longer has: (same config on other data, the rest)."""
    current = {t.id for t in trials}
    configs = {canonical_json(t.config) for t in trials}
    stale = {r["id"]: r for r in records if r["id"] not in current}
    other_data = sum(1 for r in stale.values()
                     if isinstance(r.get("data_id"), str) and canonical_json(r.get("config")) in configs)
    return other_data, len(stale) - other_data


def resource_plan(kind: str, trials: list[Trial], workers: int | None, stderr: Console) -> ResourcePlan:
    """The one resource plan of this run: local trials share this machine's cores; on Ray the cluster
    schedules each trial by its threads (one core unless the trial sets ``threads``)."""
    if kind != "local":
        return ResourcePlan(workers=None, threads=1)
    plan = plan_resources(trials, workers)
    for note in plan.notes:
        warn(stderr, note)
    return plan


def _make_executor(sweep: Sweep, to_run: int, options: SweepOptions, trial_fn: str,
                   plan: ResourcePlan) -> tuple[Executor | None, dict[str, Any]]:
    spec = sweep.spec.executor
    kind = options.executor or spec.kind
    workers = None if plan.workers is None else min(plan.workers, max(1, to_run))
    from_file = kind == spec.kind  # the file's ray settings do not apply when --executor chose local
    settings = {
        "executor": kind,
        "workers": workers,
        "threads": plan.threads,
        "gpus": plan.gpus,
        "trial_timeout": options.trial_timeout or spec.trial_timeout,
        "retries": options.retries if options.retries is not None or not from_file else spec.retries,
        "address": options.address or (spec.address if from_file else None),
        "seed": sweep.spec.seed,
        "repeats": sweep.spec.repeats,
        "trials": len(sweep.trials),
        "trials_to_run": to_run,
        "started_at": utc_now(),
    }
    if not to_run:
        return None, settings
    executor = make_executor(kind, workers=workers, threads=plan.threads, trial_timeout=settings["trial_timeout"],
                             retries=settings["retries"], address=settings["address"],
                             runtime_env=spec.runtime_env if from_file else None, trial_fn=trial_fn)
    return executor, settings


# ----------------------------------------------------------------------------------- the run


@dataclass
class _Outcome:
    interrupted: int = 0  # the signal that stopped the sweep (SIGINT, SIGTERM, SIGHUP), 0 if none
    fail_fast_stopped: bool = False
    disk_full: DiskFull | None = None  # a record the disk could not take: the sweep stops
    ran: int = 0
    seconds: float = 0.0
    report: Any = None  # the report built at the end (costbench.report.Report), for the tracker to reuse


def _run(executor: Executor, todo: list[Trial], store: RunStore, counts: Counter[str], options: SweepOptions,
         console: Console, on_record: RecordListener | None = None,
         tags: dict[str, dict[str, Any]] | None = None) -> _Outcome:
    """Run ``todo`` and store each record as it arrives; ``on_record`` hears each one once it is stored (as
    stored: environment moved out, env_id set); ``tags``: fields added to a trial's record."""
    outcome = _Outcome()
    start = time.monotonic()
    with SweepProgress(console, todo, sum(counts.values()), counts) as progress, \
            _stop_signals(executor, progress, outcome):
        for event in executor.run(todo):
            if event.kind == "started":
                progress.started(event.trial_id)
            elif event.kind == "phase":
                progress.phase(event.trial_id, event.phase or "")
            elif event.record is not None:
                event.record.update((tags or {}).get(event.trial_id, {}))
                try:
                    stored = store_environment(store.run_dir, event.record)
                    store.append(stored)
                except DiskFull as exc:  # nothing half-written stays; stop as Ctrl-C would
                    if outcome.disk_full is None:  # later records that do not fit either run again on resume
                        outcome.disk_full = exc
                        progress.note("the disk is full: ending the running trials; their trials run again "
                                      "on resume")
                        executor.cancel()
                    continue
                outcome.ran += 1
                progress.finished(event.record)
                if on_record is not None:
                    on_record(stored)
                if options.fail_fast and event.record["status"] == "failed" and not outcome.fail_fast_stopped:
                    outcome.fail_fast_stopped = True
                    progress.note(f"--fail-fast: trial {event.trial_id} failed; ending the running trials")
                    executor.cancel()
    outcome.seconds = time.monotonic() - start
    return outcome


def _make_search(sweep: Sweep, plan: ResourcePlan, kind: str, run_dir: Path,
                 latest: dict[str, dict[str, Any]]) -> Any:
    """The sweep's study, rebuilt from the records; each point it proposes becomes trials as the grid's do."""
    from costbench.search import Search

    def make_trials(point: dict[str, Any]) -> list[Trial]:
        return [dataclasses.replace(t, resources=plan.for_trial(t, kind))
                for t in with_data_cache(sweep.trials_at(point), run_dir / DATA_CACHE_DIR)]

    assert sweep.spec.search is not None
    return Search(sweep.spec.search, sweep.spec.objectives, sweep.space, make_trials, latest)


def _say_search(search: Any, latest: dict[str, dict[str, Any]], console: Console) -> Counter[str]:
    """The counts of the search's recorded trials, said when there are some."""
    counts = Counter(latest[t.id]["status"] for t in search.recorded_trials())
    if search.done:
        console.print(f"resuming the search: {search.done} of {search.target} point(s) recorded "
                      f"({counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed)", highlight=False)
    return counts


def _search(search: Any, executor: Executor, store: RunStore, counts: Counter[str], options: SweepOptions,
            console: Console, on_record: RecordListener | None = None) -> _Outcome:
    """A `search` section: Optuna proposes batches of points, each run as `_run` runs a sweep."""
    from costbench.search import run_search

    total = _Outcome()
    # the records read once, then each new one as the file holds it: re-reading trials.jsonl after every
    # batch would cost the driver time quadratic in the points searched
    latest = latest_records(read_records(store.run_dir)[0])

    def keep(record: dict[str, Any]) -> None:
        latest.pop(record["id"], None)  # file order, as latest_records keeps it
        latest[record["id"]] = json.loads(encode_record(record))
        if on_record is not None:
            on_record(record)

    def batch(trials: list[Trial]) -> bool:
        tags = {t.id: {"proposed_by": search.proposed_by[search.key(t)]} for t in trials}
        done = _run(executor, trials, store, counts, options, console, keep, tags)
        total.ran, total.seconds = total.ran + done.ran, total.seconds + done.seconds
        total.interrupted = total.interrupted or done.interrupted
        total.fail_fast_stopped = total.fail_fast_stopped or done.fail_fast_stopped
        total.disk_full = total.disk_full or done.disk_full
        return not (done.interrupted or done.fail_fast_stopped or done.disk_full)

    run_search(search, lambda: latest, batch, getattr(executor, "workers", None) or 4)
    return total


@contextmanager
def _signals_raise() -> Iterator[None]:
    """Outside the trial loop, SIGTERM and SIGHUP raise ``Interrupted`` as SIGINT raises KeyboardInterrupt,
    so every ``with`` and ``finally`` runs (lock released, temp directories removed)."""

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    with _handling((signal.SIGTERM, signal.SIGHUP), handler):
        yield


@contextmanager
def _stop_signals(executor: Executor, progress: SweepProgress, outcome: _Outcome) -> Iterator[None]:
    """First Ctrl-C, SIGTERM or SIGHUP: stop launching and end the running trials. A second: leave at once.

    Leaving at once is safe for the store: each record is one write, fsync'd before the next; the
    trial processes die with the driver (see executors.local).
    """

    def handler(signum: int, frame: Any) -> None:
        if outcome.interrupted:
            progress.abandon()
            os._exit(128 + outcome.interrupted)
        outcome.interrupted = signum
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        progress.note(f"interrupted ({name}): ending the running trials and keeping every finished record "
                      "(Ctrl-C again to leave at once)")
        executor.cancel()

    with _handling(STOP_SIGNALS, handler):
        yield


@contextmanager
def _handling(signums: tuple[int, ...], handler: Any) -> Iterator[None]:
    """Install ``handler`` for ``signums`` (main thread only, where Python delivers signals) and restore.

    A signal the caller ignores stays ignored: under ``nohup`` a closed terminal must not stop the sweep.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = [signum for signum in signums if signal.getsignal(signum) != signal.SIG_IGN]
    previous = {signum: signal.signal(signum, handler) for signum in wanted}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _finish(sweep: Sweep, trials: list[Trial], wanted: int, run_dir: Path, options: SweepOptions,
            outcome: _Outcome, console: Console, stderr: Console) -> int:
    """``trials``: the sweep's as it now stands (a search: the points it recorded); ``wanted``: the trials
    it means to record (a search: its target points times the repeats)."""
    records, _ = read_records(run_dir)
    latest = latest_records(records)
    statuses = Counter(latest[t.id]["status"] for t in trials if t.id in latest)
    summary = ", ".join(f"{statuses[s]} {s}" for s in ("ok", "failed", "skipped"))
    if outcome.ran:
        console.print(f"ran {outcome.ran} trial(s) in {outcome.seconds:.1f} s; this sweep now has {summary} "
                      f"of {len(trials)}" + (" searched" if sweep.spec.search else ""), highlight=False)
    if outcome.interrupted or outcome.fail_fast_stopped or outcome.disk_full:
        missing = max(0, wanted - sum(statuses.values()))
        if outcome.disk_full:
            stderr.print(f"error: {outcome.disk_full}", highlight=False, markup=False, soft_wrap=True)
        why = (f"interrupted ({signal.Signals(outcome.interrupted).name})" if outcome.interrupted
               else "stopped: the disk is full" if outcome.disk_full
               else "stopped by --fail-fast")
        stderr.print(f"{why}: {missing} trial(s) not {'recorded' if outcome.disk_full else 'run'}; every "
                     f"finished record is kept in "
                     f"{run_dir / 'trials.jsonl'}", highlight=False)
        _say_resume_command(run_dir, options, sweep, stderr)
        if outcome.interrupted:
            return 128 + outcome.interrupted
        return EXIT_USER_ERROR if outcome.disk_full else EXIT_FAILED
    reported = _report(run_dir, console, stderr, outcome)
    files = [run_dir / name for name in (SWEEP_FILE, RUN_FILE, DATA_SUMMARY_FILE, "trials.jsonl")]
    console.print("written: " + "  ".join(str(f) for f in files if f.exists()), highlight=False)
    if not reported:
        return EXIT_USER_ERROR
    if statuses["failed"] and not options.allow_failures:
        stderr.print(f"{statuses['failed']} trial(s) failed: exit status {EXIT_FAILED} (--allow-failures "
                     f"gives {EXIT_OK})", highlight=False)
        return EXIT_FAILED
    return EXIT_OK


def _say_resume_command(run_dir: Path, options: SweepOptions, sweep: Sweep, stderr: Console) -> None:
    if (run_dir / SWEEP_FILE).exists():
        command = resume_command(run_dir, options)
    else:  # stopped before the resolved sweep was written: nothing ran, the same command starts it
        command = shlex.join(["costbench", "sweep", str(sweep.path), "--out", str(run_dir)])
    stderr.print(f"resume with: {command}", highlight=False, markup=False, soft_wrap=True)


def resume_command(run_dir: Path, options: SweepOptions) -> str:
    """The exact command that picks this run up where it stopped (the resolved sweep keeps the ids)."""
    parts = ["costbench", "sweep", str(run_dir / SWEEP_FILE), "--out", str(run_dir)]
    flags = {"--workers": options.workers, "--executor": options.executor, "--address": options.address,
             "--trial-timeout": options.trial_timeout, "--retries": options.retries, "--track": options.track}
    for flag, value in flags.items():
        if value is not None:
            parts += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    parts += [flag for flag, on in (("--fail-fast", options.fail_fast), ("--retry-failed", options.retry_failed),
                                    ("--allow-failures", options.allow_failures)) if on]
    return shlex.join(parts)


def _report(run_dir: Path, console: Console, stderr: Console, outcome: _Outcome) -> bool:
    """The Pareto table at the end of a sweep, with the report's defaults (the sweep's own objectives);
    the report built is kept in ``outcome.report``.

    False when the disk had no room for the report's files (the records are safe; the exit status says so).
    """
    from costbench.report import ReportOptions, render_report

    try:
        outcome.report = render_report(run_dir, ReportOptions(), console=console, stderr=stderr)
    except UserError as exc:
        stderr.print(f"report: {exc}", highlight=False, markup=False)
        return not isinstance(exc, DiskFull)
    except Exception as exc:
        full = no_space_error(exc)
        if full is None:
            raise
        stderr.print(f"report: {DiskFull(full.filename or run_dir, None, full)}", highlight=False, markup=False)
        return False
    return True
