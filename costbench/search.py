"""A `search` section: Optuna chooses which grid points to run, costbench's executors run them.

trials.jsonl stays the store of record. Optuna's study lives in memory only: at the start of every run it is
rebuilt from the records (``study.add_trial`` of a ``create_trial``: values = the sweep's objectives,
constraints = the section's), so a resumed or killed search continues where it stopped and never runs a
recorded grid point again. The axes' values (as the grid expanded them) are categorical choices; a point
Optuna proposes that is already recorded is told its recorded values without running. Points are asked in
batches of the executor's parallel slots (ask/tell), so local and Ray run them in parallel.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from costbench.errors import UserError
from costbench.spec import Trial, canonical_json, parse_objective
from costbench.spec.schema import SearchConfig, parse_constraint

INSTALL_HINT = 'the search section needs Optuna: pip install "costbench[search]"'
INFEASIBLE = 1e12  # a constraint whose metric is n/a: the point counts as infeasible
ASKS_PER_TRIAL = 50  # a sampler re-proposing recorded points gives up after this many asks per new point


def space(trials: Sequence[Trial]) -> dict[str, list[Any]]:
    """Each axis and its values as the grid expanded them (first-seen order): the categorical choices."""
    axes: dict[str, dict[str, Any]] = {}
    for trial in trials:
        for axis, value in trial.axes.items():
            axes.setdefault(axis, {}).setdefault(canonical_json(value), value)
    return {axis: list(values.values()) for axis, values in axes.items() if len(values) > 1}


def point_key(axes: dict[str, Any], names: Sequence[str]) -> str:
    return canonical_json({n: canonical_json(axes.get(n)) for n in names})


def objective_values(records: Sequence[dict[str, Any]], objectives: Sequence[str]) -> list[float] | None:
    """The mean of each objective over a point's ok records (its repeats), or None when one is n/a."""
    ok = [r for r in records if r.get("status") == "ok"]
    values = []
    for objective in objectives:
        metric, _ = parse_objective(objective)
        numbers = [float(v) for r in ok if isinstance(v := (r.get("metrics") or {}).get(metric), (int, float))
                   and math.isfinite(v)]
        if not ok or len(numbers) < len(ok):
            return None
        values.append(sum(numbers) / len(numbers))
    return values


def constraint_values(records: Sequence[dict[str, Any]], constraints: Sequence[str]) -> dict[str, float]:
    """Optuna's convention: <= 0 is feasible. 'p99_ms <= 5' -> p99_ms - 5 (worst repeat)."""
    out = {}
    for text in constraints:
        metric, op, bound = parse_constraint(text)
        numbers = [float(v) for r in records if isinstance(v := (r.get("metrics") or {}).get(metric), (int, float))
                   and math.isfinite(v)]
        if not numbers:
            out[text] = INFEASIBLE
        else:
            out[text] = max(numbers) - bound if op == "<=" else bound - min(numbers)
    return out


def make_sampler(config: SearchConfig, choices: dict[str, list[Any]]) -> Any:
    """The section's sampler, seeded; params are indices into each axis's choices."""
    import optuna

    if config.sampler == "grid":
        return optuna.samplers.GridSampler({k: list(range(len(v))) for k, v in choices.items()}, seed=config.seed)
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=config.seed)
    if config.sampler == "nsga2":
        population = max(4, min(50, config.n_trials // 4))
        return optuna.samplers.NSGAIISampler(seed=config.seed, population_size=population)
    return optuna.samplers.TPESampler(seed=config.seed, multivariate=True, n_startup_trials=min(10, max(
        2, config.n_trials // 3)))


class Search:
    """The study over a sweep's grid points, rebuilt from the records, asked for the next points to run."""

    def __init__(self, config: SearchConfig, objectives: Sequence[str], trials: Sequence[Trial],
                 latest: dict[str, dict[str, Any]]) -> None:
        try:
            import optuna
        except ImportError:
            raise UserError(INSTALL_HINT) from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.config = config
        self.objectives = list(objectives)
        self.choices = space(trials)
        self.names = list(self.choices)
        self.points: dict[str, list[Trial]] = {}
        for trial in trials:
            self.points.setdefault(point_key(trial.axes, self.names), []).append(trial)
        from optuna.distributions import CategoricalDistribution

        self.distributions = {n: CategoricalDistribution(list(range(len(v)))) for n, v in self.choices.items()}
        directions = ["maximize" if parse_objective(o)[1] == "max" else "minimize" for o in self.objectives]
        self.study = optuna.create_study(directions=directions,
                                         sampler=make_sampler(config, self.choices))
        self.told: set[str] = set()  # points recorded and in the study
        self.results: dict[str, tuple[list[float] | None, dict[str, float]]] = {}
        self.pending: dict[str, Any] = {}  # points of the batch running: their asked Optuna trials
        self.rng = random.Random(config.seed)
        self.rebuild(latest)

    def _index_params(self, trial: Trial) -> dict[str, int]:
        keys = {n: [canonical_json(v) for v in vs] for n, vs in self.choices.items()}
        return {n: keys[n].index(canonical_json(trial.axes.get(n))) for n in self.names}

    def _result(self, records: list[dict[str, Any]]) -> tuple[list[float] | None, dict[str, float]]:
        return objective_values(records, self.objectives), constraint_values(records, self.config.constraints)

    def rebuild(self, latest: dict[str, dict[str, Any]]) -> None:
        """Add every grid point recorded (all its repeats) and not yet in the study, from its records."""
        from optuna.trial import TrialState, create_trial

        for key, members in self.points.items():
            if key in self.told or not all(t.id in latest for t in members):
                continue
            values, constraints = self.results[key] = self._result([latest[t.id] for t in members])
            params = self._index_params(members[0])
            if values is None:
                frozen = create_trial(state=TrialState.FAIL, params=params, distributions=self.distributions)
            else:
                frozen = create_trial(values=values, params=params, distributions=self.distributions,
                                      constraints=constraints or None)
            self.study.add_trial(frozen)
            self.told.add(key)

    @property
    def done(self) -> int:
        """Grid points recorded (each counts once, whatever its repeats)."""
        return len(self.told)

    def _tell(self, asked: Any, values: list[float] | None, constraints: dict[str, float]) -> None:
        from optuna.trial import TrialState

        if values is None:
            self.study.tell(asked, state=TrialState.FAIL)
            return
        for name, value in constraints.items():
            asked.set_constraint(name, value)
        self.study.tell(asked, values)

    def next_batch(self, size: int) -> list[Trial]:
        """Up to ``size`` grid points not recorded yet, as Optuna proposes them (their trials, repeats included).

        A proposal already recorded is told its recorded values without running; a combination the grid
        excludes, or one already in this batch, is told failed.
        """
        wanted = min(size, self.config.n_trials - self.done, len(self.points) - self.done)
        asks = 0
        while len(self.pending) < wanted and asks < ASKS_PER_TRIAL * max(1, wanted):
            asks += 1
            asked = self.study.ask(self.distributions)
            key = point_key({n: self.choices[n][asked.params[n]] for n in self.names}, self.names)
            if key in self.told:
                self._tell(asked, *self.results[key])
            elif key in self.points and key not in self.pending:
                self.pending[key] = asked
            else:
                self._tell(asked, None, {})
        if len(self.pending) < wanted:  # the sampler keeps proposing recorded points: some unrecorded ones
            left = [k for k in self.points if k not in self.told and k not in self.pending]
            for key in self.rng.sample(left, min(len(left), wanted - len(self.pending))):
                self.study.enqueue_trial(self._index_params(self.points[key][0]))
                self.pending[key] = self.study.ask(self.distributions)
        return [t for key in self.pending for t in self.points[key]]

    def finish_batch(self, latest: dict[str, dict[str, Any]]) -> None:
        """Tell Optuna what the batch's records say; a point left unrecorded (interrupted) is told failed."""
        for key, asked in self.pending.items():
            members = self.points[key]
            if all(t.id in latest for t in members):
                self.results[key] = self._result([latest[t.id] for t in members])
                self._tell(asked, *self.results[key])
                self.told.add(key)
            else:
                self._tell(asked, None, {})
        self.pending = {}


def run_search(config: SearchConfig, objectives: Sequence[str], trials: Sequence[Trial],
               latest: Callable[[], dict[str, dict[str, Any]]], run_batch: Callable[[list[Trial]], bool],
               parallel: int) -> Search:
    """Ask, run a batch of ``parallel`` points, rebuild from the records, until n_trials points are recorded.

    ``run_batch`` runs the trials through the sweep's executor (records land in trials.jsonl) and returns
    False when the sweep must stop (Ctrl-C, --fail-fast, a full disk).
    """
    search = Search(config, objectives, trials, latest())
    while search.done < min(config.n_trials, len(search.points)):
        batch = search.next_batch(max(1, parallel))
        if not batch:
            break
        going_on = run_batch(batch)
        search.finish_batch(latest())
        if not going_on:
            break
    return search
