"""The command line: parse, call, render. Every user mistake is one line on stderr and exit status 2."""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from costbench.compress.label import axis_label
from costbench.errors import UserError, warn
from costbench.store import DiskFull, no_space_error

app = typer.Typer(
    name="costbench",
    help="Which purchase-prediction configuration buys the most accuracy per dollar, per GB and per ms.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class _Console(Console):
    """A reader that closes the pipe early (``costbench report ... | head``) made its choice; it is not
    an error. Rich's own handler exits with 1; this one sends the rest to devnull and lets the command
    finish (a sweep still records every trial, a report still writes its files) with its own status."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        _to_devnull(self.file)


# A log file or pipe has no width to respect; 80 columns would wrap numbers mid-digit in CI logs.
console = _Console(width=None if sys.stdout.isatty() else 200)
stderr = _Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="Override any key, value parsed as YAML "
                 "(--set train.epochs=5, --set grid.precision=\\[fp32,int8]). Repeatable."),
]


EXIT_CODES = ("Exit status: 0 every trial ok or skipped; 1 some trial failed (0 with --allow-failures) or "
              "--fail-fast stopped the sweep; 2 a mistake in the input, or a full disk; 130 Ctrl-C, 143 "
              "SIGTERM, 129 SIGHUP (each stops launching, ends the running trials, keeps every finished "
              "record and prints the command that resumes).")


def user_errors(command: F) -> F:
    """Report a UserError (or a full disk) as one line and exit 2, so a user's mistake never shows a
    traceback; a Ctrl-C outside a sweep's own handling is one line and 130; a closed pipe
    (``costbench report ... | head``) ends quietly with 0."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:  # a write outside the consoles (e.g. `env --json`)
            _to_devnull(sys.stdout)
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            stderr.print("interrupted", highlight=False)
            raise typer.Exit(128 + signal.SIGINT) from None
        except Exception as exc:
            full = no_space_error(exc)
            if full is None:
                raise
            error(str(DiskFull(full.filename, None, full)) if full.filename else
                  f"no space left on device while writing a file ({full.strerror}); free some space")
            raise typer.Exit(UserError.exit_code) from None

    return wrapper  # type: ignore[return-value]


def error(message: str) -> None:
    stderr.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)


def _to_devnull(stream: Any) -> None:
    """What the Python docs advise on a broken pipe: point the stream's descriptor at devnull, so later
    writes and the flush at exit do not raise again
    (https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, stream.fileno())
    except (AttributeError, OSError, ValueError):
        pass  # not a real file (a test's buffer): quiet is enough
    finally:
        os.close(devnull)


def main() -> None:
    """The ``costbench`` command. A pipe closed while click itself writes (help text) also ends with 0."""
    try:
        app()
    except BrokenPipeError:
        _to_devnull(sys.stdout)
        sys.exit(0)


@app.command()
@user_errors
def validate(
    sweep_file: Annotated[Path, typer.Argument(help="The sweep YAML file.", show_default=False)],
    set_: SetOption = None,
) -> None:
    """Check a sweep file and its data files, and list the trials it expands to, without running anything."""
    from costbench.engine import check_data
    from costbench.spec import load_sweep, machine_warnings
    from costbench.spec.schema import GridRange

    sweep = load_sweep(sweep_file, set_ or [])
    check_data(sweep.trials, asked_by=sweep.where("data"))
    for warning in machine_warnings(sweep.trials):
        warn(stderr, warning)
    table = Table(title=f"{sweep.spec.name}: {len(sweep.trials)} trial(s)", title_justify="left")
    table.add_column("id", style="cyan", no_wrap=True)
    axes = list(dict.fromkeys(k for t in sweep.trials for k in t.axes))
    if sweep.spec.repeats > 1:
        table.add_column("repeat", justify="right")
    for axis in axes:
        table.add_column(axis)
    for trial in sweep.trials:
        repeat = [str(trial.repeat)] if sweep.spec.repeats > 1 else []
        table.add_row(trial.id, *repeat, *(str(axis_label(a, trial.axes.get(a, ""))) for a in axes))
    console.print(table)
    if sweep.has_ranges and sweep.spec.search is not None:
        ranges = ", ".join(f"{k} {a.describe()}" for k, a in sweep.space.items() if isinstance(a, GridRange))
        console.print(f"{sweep.path}: valid; a search of {sweep.spec.search.n_trials} point(s) over ranges "
                      f"({ranges}); the {len(sweep.trials)} trial(s) listed are its corners (each range at low "
                      "and at high), each checked", highlight=False)
        return
    console.print(f"{sweep.path}: valid, {len(sweep.trials)} trial(s)")


@app.command()
@user_errors
def env(
    as_json: Annotated[bool, typer.Option("--json", help="Print the environment as JSON.")] = False,
) -> None:
    """Show the machine results come from: CPU and its precision flags, GPUs, library versions."""
    from costbench.measure.environment import collect_environment
    from costbench.measure.roofline import cached_gemm_peaks

    info = {**collect_environment(), "gemm_peak": cached_gemm_peaks()}
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    cpu = info["cpu"]
    table.add_row("CPU", f"{cpu['model']} ({cpu['usable_cores']} usable of {cpu['logical_cores']} cores)")
    flags = "  ".join(f"{name} {'yes' if on else 'no'}" for name, on in cpu["flags"].items())
    table.add_row("precision flags", flags)
    for gpu in info["gpus"] or [None]:
        table.add_row("GPU", "none" if gpu is None else
                      f"{gpu['name']}, {gpu['memory_mb']} MB, driver {gpu['driver']}, CUDA {gpu['cuda']}")
    table.add_row("torch threads", f"{info['torch_threads']} intra-op, {info['torch_interop_threads']} inter-op")
    for precision, unit in (("fp32", "GFLOP/s"), ("int8", "GOP/s")):
        peak = info["gemm_peak"][precision]
        kernels = ", ".join(f"{name} {value:.0f}" for name, value in peak["by_kernel"].items())
        table.add_row(f"{precision} GEMM peak", f"{peak['gflops']:.0f} {unit} ({peak['kernel']}; {kernels}; "
                      f"{info['gemm_peak']['what']} on {info['gemm_peak']['threads']} thread(s))"
                      if peak["gflops"] else "n/a (no kernel)")
    versions = "  ".join(f"{k} {v or 'not installed'}" for k, v in info["versions"].items())
    table.add_row("versions", versions)
    table.add_row("costbench", f"{info['costbench']} ({info['costbench_commit'] or 'not a git checkout'})")
    console.print(table)


@app.command(epilog=EXIT_CODES)
@user_errors
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="The sweep YAML file.", show_default=False)],
    set_: SetOption = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (default: results/<sweep name>).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Trials in parallel (default: one per core "
                                                "with one thread each on CPU, one per GPU on CUDA).")] = None,
    executor: Annotated[str | None, typer.Option(help="local or ray (default: the sweep file's).")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address, e.g. 10.0.0.5:6379.")] = None,
    trial_timeout: Annotated[float | None, typer.Option(min=1, help="End a trial after this many "
                                                        "seconds (recorded as failed: timeout).")] = None,
    retries: Annotated[int | None, typer.Option(min=0, help="Ray: retry a crashed trial N times.")] = None,
    fail_fast: Annotated[bool, typer.Option(help="Stop at the first failed trial.")] = False,
    retry_failed: Annotated[bool, typer.Option(help="Run again the trials that failed last time.")] = False,
    allow_failures: Annotated[bool, typer.Option(help="Exit 0 even when some trials failed.")] = False,
    fresh: Annotated[bool, typer.Option(help="Start over in a new run directory (old results are kept).")]
    = False,
    track: Annotated[str | None, typer.Option(help="mlflow: log each record to RUN_DIR/mlflow.db as it arrives "
                                              "(as `costbench export mlflow` does).")] = None,
) -> None:
    """Train, evaluate and measure every trial of a sweep, resuming where a previous run stopped."""
    from costbench.engine import SweepOptions, run_sweep
    from costbench.spec import load_sweep

    loaded = load_sweep(sweep_file, set_ or [])
    options = SweepOptions(out=out, workers=workers, executor=executor, address=address,
                           trial_timeout=trial_timeout, retries=retries, fail_fast=fail_fast,
                           retry_failed=retry_failed, fresh=fresh, allow_failures=allow_failures,
                           track=track)
    raise typer.Exit(run_sweep(loaded, options, console=console, stderr=stderr))


@app.command()
@user_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `costbench sweep`.",
                                            show_default=False)],
    objectives: Annotated[str | None, typer.Option(help="e.g. auc:max,train_cost_usd:min,p99_ms:min "
                                                   "(default: the sweep file's).")] = None,
    by: Annotated[str | None, typer.Option(help="Compute one Pareto front per value of this field, "
                                           "e.g. device or env_id.")] = None,
    where: Annotated[list[str] | None, typer.Option(help="Filter before the front, e.g. \"p99_ms<=20\". "
                                                    "Repeatable.")] = None,
    min_quality: Annotated[float, typer.Option(help="Flag low-quality (never picked) below this share of "
                                               "the best fp32 AUC of their family; chance-level AUC (< 0.55) "
                                               "and AUC more than 0.05 below the run's best are flagged "
                                               "too.")] = 0.99,
    traffic: Annotated[str | None, typer.Option(help="Serving traffic for the cost planner, e.g. 50M/day.")]
    = None,
    slo_p99: Annotated[str | None, typer.Option(help="p99 latency SLO for the planner, e.g. 20ms.")] = None,
    retrains_per_month: Annotated[float, typer.Option(help="Planner: retrainings per month.")] = 0.0,
    format_: Annotated[str, typer.Option("--format", help="What to print: table, csv, markdown, json or "
                                         "none. Every file is written regardless.")] = "table",
    all_records: Annotated[bool, typer.Option(help="Also rank the records of earlier versions of the sweep "
                                              "(not in run.json's trial ids).")] = False,
    tie_tolerance: Annotated[float, typer.Option(help="AUC differences up to this count as ties for the "
                                                 "pick; the next objectives then decide.")] = 0.001,
) -> None:
    """Render a run from its directory alone (no torch, no re-expanding the sweep): the decision, the Pareto
    table, trials.csv, pareto.csv, report.md, report.html and plots. With --where the files get names of
    their own (report-where-<condition>.html, ...), so the main report is never overwritten."""
    from costbench.report import ReportOptions, render_report

    options = ReportOptions(objectives=objectives, by=by, where=where or [], min_quality=min_quality,
                            traffic=traffic, slo_p99=slo_p99, retrains_per_month=retrains_per_month,
                            format=format_, all_records=all_records, tie_tolerance=tie_tolerance)
    render_report(run_dir, options, console=console, stderr=stderr)


export_app = typer.Typer(help="Send a run to the tools you keep experiments in.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("mlflow")
@user_errors
def export_mlflow(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `costbench sweep`.",
                                            show_default=False)],
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default: sqlite:///RUN_DIR/"
                                                     "mlflow.db, artifacts in RUN_DIR/mlartifacts).")] = None,
    experiment: Annotated[str | None, typer.Option(help="Experiment name (default: the sweep's name).")] = None,
) -> None:
    """One MLflow run per trial (params: config; metrics; tags: status, Pareto rank, pick) under a parent run
    holding the report files. Exporting again updates those runs, never duplicates them."""
    from costbench.export.mlflow import export_run

    done = export_run(run_dir, tracking_uri, experiment)
    console.print(f"MLflow {done.tracking_uri}, experiment '{done.experiment}': {done.created} run(s) created, "
                  f"{done.updated} updated, parent run {done.parent_run_id} with {len(done.artifacts)} report "
                  f"file(s)", highlight=False, markup=False)
    if tracking_uri is None:
        console.print(f"view it: mlflow ui --backend-store-uri {done.tracking_uri}", highlight=False, markup=False)
