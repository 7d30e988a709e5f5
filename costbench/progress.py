"""What a user sees while a sweep runs: a live display on a terminal, one plain line per event in a log."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

from costbench.compress.label import axis_label
from costbench.spec import Trial

BAR_WIDTH = 16
FIXED_COLUMNS = 44  # spinner, bar, count, elapsed and ETA columns with their gaps


def describe_axes(axes: dict[str, Any]) -> str:
    return " ".join(f"{k}={axis_label(k, v)}" for k, v in axes.items())


class _OverallOnly(ProgressColumn):
    """Shows a column (bar, count, ETA) on the overall line only, not on the running-trial lines."""

    def __init__(self, inner: ProgressColumn) -> None:
        super().__init__()
        self.inner = inner

    def render(self, task: Task) -> Any:
        return self.inner.render(task) if task.fields.get("overall") else Text("")


class SweepProgress:
    """Overall bar (done/total, ETA, ok/failed/skipped counts) and one line per running trial.

    ``done`` counts trials already recorded by an earlier run, so a resumed sweep shows its true
    position. When the console is not a terminal every event is one plain line instead (CI logs).
    """

    def __init__(self, console: Console, trials: list[Trial], done: int, counts: Counter[str]) -> None:
        self.console = console
        self.trials = {t.id: t for t in trials}
        self.total = done + len(trials)
        self.done = done
        self.counts = counts
        self.live = console.is_terminal
        self._rows: dict[str, Any] = {}
        self._progress: Progress | None = None
        self._overall: Any = None

    def __enter__(self) -> SweepProgress:
        if self.live:
            # The description takes what is left and is cut with an ellipsis, so the bar, the count and
            # the ETA keep their place however long a trial's label is (80 columns included).
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
                _OverallOnly(BarColumn(bar_width=BAR_WIDTH)),
                _OverallOnly(MofNCompleteColumn()),
                TimeElapsedColumn(),
                _OverallOnly(TimeRemainingColumn()),
                console=self.console,
                expand=True,
            )
            self._progress.start()
            self._overall = self._progress.add_task(self._summary(), total=self.total, completed=self.done,
                                                    overall=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def started(self, trial_id: str) -> None:
        label = self._label(trial_id)
        if self._progress is not None:
            self._rows[trial_id] = self._progress.add_task(self._row_text(trial_id, "starting"), total=None)
        else:
            self._line(f"start   {label}")

    def phase(self, trial_id: str, phase: str) -> None:
        label = self._label(trial_id)
        if self._progress is not None and trial_id in self._rows:
            self._progress.update(self._rows[trial_id], description=self._row_text(trial_id, phase))
        elif self._progress is None:
            self._line(f"phase   {label}  {phase}")

    def finished(self, record: dict[str, Any]) -> None:
        self.done += 1
        self.counts[record["status"]] += 1
        label = self._label(record["id"])
        reason = f"  {record['reason']}" if record.get("reason") else ""
        line = f"{record['status']:<7} {label}{reason}"
        if self._progress is not None:
            row = self._rows.pop(record["id"], None)
            if row is not None:
                self._progress.remove_task(row)
            self._progress.update(self._overall, completed=self.done, description=self._summary())
            if record["status"] != "ok":
                style = "red" if record["status"] == "failed" else "yellow"
                self._progress.console.print(Text(line, style=style))
        else:
            self._line(line)

    def note(self, text: str) -> None:
        """A message printed above the live display (or as a plain line)."""
        if self._progress is not None:
            self._progress.console.print(Text(text))
        else:
            self.console.out(text, highlight=False)

    def abandon(self) -> None:
        """Before leaving at once (second Ctrl-C): give the terminal its cursor back."""
        if self._progress is not None:
            self.console.show_cursor(True)
            self.console.line()

    def _summary(self) -> str:
        return "trials  " + "  ".join(f"{s} {self.counts[s]}" for s in ("ok", "failed", "skipped"))

    def _label(self, trial_id: str) -> str:
        trial = self.trials.get(trial_id)
        axes = describe_axes(trial.axes) if trial is not None else ""
        repeat = f" repeat={trial.repeat}" if trial is not None and trial.repeat else ""
        return f"{trial_id} {axes}{repeat}".rstrip()

    def _row_text(self, trial_id: str, phase: str) -> str:
        """A running trial's line: its label, then its phase; where that is too long for the terminal,
        the phase moves next to the id, so only the axes are cut."""
        text = f"  {self._label(trial_id)}  {phase}"
        if len(text) <= self.console.width - FIXED_COLUMNS:
            return text
        trial = self.trials.get(trial_id)
        axes = describe_axes(trial.axes) if trial is not None else ""
        return f"  {trial_id} {phase}  {axes}".rstrip()

    def _line(self, text: str) -> None:
        width = len(str(self.total))
        self.console.out(f"[{self.done:>{width}}/{self.total}] {text}", highlight=False)
