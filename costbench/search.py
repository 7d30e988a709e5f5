"""A `search` section: Optuna chooses which grid points to run, costbench's executors run them.

trials.jsonl stays the store of record. Optuna's study lives in memory only: at the start of every run it is
rebuilt from the records (``study.add_trial`` of a ``create_trial``: values = the sweep's objectives,
constraints = the section's), so a resumed or killed search continues where it stopped and never runs a
recorded point again. A grid list is a categorical choice of its values (as trials see them); a range
``{low, high, log, step}`` is Optuna's int or float distribution (suggest_int / suggest_float), so a
search over ranges never lists its points. A point Optuna proposes that is already recorded is told its
recorded values without running. Points are asked in
batches of the executor's parallel slots (ask/tell), so local and Ray run them in parallel.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from costbench.errors import UserError
from costbench.spec import Trial, canonical_json, parse_objective
from costbench.spec.schema import GridRange, SearchConfig, parse_constraint

INSTALL_HINT = 'the search section needs Optuna: pip install "costbench[search]"'
INFEASIBLE = 1e12  # a constraint whose metric is n/a: the point counts as infeasible
ASKS_PER_TRIAL = 50  # a sampler re-proposing recorded points gives up after this many asks per new point
MAX_LISTED = 10_000  # a space with more points than this is never listed (no fill-in)


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
    """The section's sampler, seeded. Why these settings (benchmarks/search_efficiency.py, four grids):

    - TPE multivariate, ``n_startup_trials`` a quarter of the budget (2 to 10): independent (univariate)
      TPE cannot learn that size, precision and batch size act together, and was worse on every grid;
      Optuna's default of 10 random startup trials is most of a 16-point budget, as good on three grids
      and clearly worse on the fourth.
    - NSGA-II population a quarter of the budget (4 to 50): a budget of a few generations; larger
      populations were no better than random.
    - Not GPSampler: over 40 seeds its worst case and its count under 90% were worse than TPE's, at
      about a second per proposal (README, "How good is a search with a third of the points?").
    ``choices``: the categorical axes' values, for the grid sampler (ranges never reach it).
    """
    import optuna

    if config.sampler == "grid":
        return optuna.samplers.GridSampler({k: list(range(len(v))) for k, v in choices.items()}, seed=config.seed)
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=config.seed)
    quarter = config.n_trials // 4
    if config.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=config.seed, population_size=max(4, min(50, quarter)))
    return optuna.samplers.TPESampler(seed=config.seed, multivariate=True, n_startup_trials=max(2, min(10, quarter)))


def distribution(axis: list[Any] | GridRange) -> Any:
    """A list: a categorical choice of its indices. A range: suggest_int's or suggest_float's distribution."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not isinstance(axis, GridRange):
        return CategoricalDistribution(list(range(len(axis))))
    if axis.is_int:
        return IntDistribution(int(axis.low), int(axis.high), log=axis.log, step=int(axis.step or 1))
    return FloatDistribution(float(axis.low), float(axis.high), log=axis.log,
                             step=None if axis.step is None else float(axis.step))


def finite_points(space: dict[str, list[Any] | GridRange]) -> list[dict[str, Any]] | None:
    """Every point of a space small and discrete enough to list (up to MAX_LISTED), else None."""
    counts = [len(a) if not isinstance(a, GridRange) else None if not a.is_int and a.step is None
              else round((a.high - a.low) / (a.step or 1)) + 1 for a in space.values()]
    if None in counts or math.prod(c for c in counts if c is not None) > MAX_LISTED:
        return None
    # low + k * step clipped to high, as Optuna clips its proposals (0.1 + 3 * 0.2 is 0.7000000000000001)
    values = [a if not isinstance(a, GridRange) else [min(a.high, a.low + k * (a.step or 1)) for k in range(count)]
              for a, count in zip(space.values(), counts, strict=True)]
    return [dict(zip(space, combo, strict=True)) for combo in itertools.product(*values)]


class Search:
    """The study over a sweep's space, rebuilt from the records, asked for the next points to run.

    ``space``: the grid's axes (lists of values as trials see them, or ranges); ``make_trials``: one
    point's trials (its repeats), none when the sweep excludes it. A point is identified by its axes'
    values as its trials hold them (not by the trials' group: a grid may have the seed as an axis).
    ``sampler``: an Optuna sampler instead of the section's (the benchmark compares settings with it).
    """

    def __init__(self, config: SearchConfig, objectives: Sequence[str], space: dict[str, list[Any] | GridRange],
                 make_trials: Callable[[dict[str, Any]], list[Trial]], latest: dict[str, dict[str, Any]],
                 sampler: Any = None) -> None:
        try:
            import optuna
        except ImportError:
            raise UserError(INSTALL_HINT) from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.config = config
        self.objectives = list(objectives)
        self.fixed = {k: v[0] for k, v in space.items() if not isinstance(v, GridRange) and len(v) == 1}
        self.space = {k: v for k, v in space.items() if k not in self.fixed}
        self.make_trials = make_trials
        self.distributions = {n: distribution(axis) for n, axis in self.space.items()}
        self.listed = finite_points(self.space)
        directions = ["maximize" if parse_objective(o)[1] == "max" else "minimize" for o in self.objectives]
        choices = {k: v for k, v in self.space.items() if not isinstance(v, GridRange)}
        self.study = optuna.create_study(directions=directions, sampler=sampler or make_sampler(config, choices))
        self.points: dict[str, list[Trial]] = {}  # point key -> the point's trials, for every point seen
        self.told: set[str] = set()  # points recorded and in the study
        self.results: dict[str, tuple[list[float] | None, dict[str, float]]] = {}
        self.pending: dict[str, Any] = {}  # points of the batch running: their asked Optuna trials
        self.proposed_by: dict[str, str] = {}  # point key -> who chose the point this run: the sampler or fill-in
        self.rng = random.Random(config.seed)
        if self.listed is not None:  # a point the sweep excludes is no point of the space
            self.listed = [p for p in self.listed if self._trials(p)[0] is not None]
        self.rebuild(latest)

    @property
    def target(self) -> int:
        """Points to record: n_trials, or every point of a smaller listed space."""
        return min(self.config.n_trials, len(self.listed)) if self.listed is not None else self.config.n_trials

    @property
    def done(self) -> int:
        """Points recorded (each counts once, whatever its repeats)."""
        return len(self.told)

    def recorded_trials(self) -> list[Trial]:
        return [t for key in self.told for t in self.points[key]]

    def key(self, trial: Trial) -> str:
        """The point a trial belongs to."""
        return canonical_json({n: trial.axes.get(n) for n in self.space})

    def _params(self, point: dict[str, Any]) -> dict[str, Any] | None:
        """Optuna's params of a point, or None when a value is outside the space (another sweep's record)."""
        params = {}
        for name, axis in self.space.items():
            value = point.get(name)
            if isinstance(axis, GridRange):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                        not axis.low <= value <= axis.high or (axis.is_int and value != int(value)):
                    return None
                params[name] = int(value) if axis.is_int else float(value)
            else:
                keys = [canonical_json(v) for v in axis]
                if canonical_json(value) not in keys:
                    return None
                params[name] = keys.index(canonical_json(value))
        return params

    def _point(self, params: dict[str, Any]) -> dict[str, Any]:
        point = dict(self.fixed)
        for name, axis in self.space.items():
            point[name] = params[name] if isinstance(axis, GridRange) else axis[params[name]]
        return point

    def _trials(self, point: dict[str, Any]) -> tuple[str | None, list[Trial]]:
        """The point's key and trials (None and none when the sweep excludes it)."""
        members = self.make_trials(point)
        if not members:
            return None, []
        key = self.key(members[0])
        self.points.setdefault(key, members)
        return key, members

    def _result(self, records: list[dict[str, Any]]) -> tuple[list[float] | None, dict[str, float]]:
        return objective_values(records, self.objectives), constraint_values(records, self.config.constraints)

    def rebuild(self, latest: dict[str, dict[str, Any]]) -> None:
        """Add every point recorded (all its repeats) and not yet in the study, from its records: a record
        counts when its axes name a point of this space whose trials have exactly the recorded ids."""
        from optuna.trial import TrialState, create_trial

        for record in latest.values():
            axes = record.get("axes")
            params = self._params({**self.fixed, **axes}) if isinstance(axes, dict) else None
            if params is None:
                continue
            key, members = self._trials(self._point(params))
            if key is None or key in self.told or record.get("id") not in {t.id for t in members} or \
                    not all(t.id in latest for t in members):
                continue
            values, constraints = self.results[key] = self._result([latest[t.id] for t in members])
            if values is None:
                frozen = create_trial(state=TrialState.FAIL, params=params, distributions=self.distributions)
            else:
                frozen = create_trial(values=values, params=params, distributions=self.distributions,
                                      constraints=constraints or None)
            self.study.add_trial(frozen)
            self.told.add(key)

    def _tell(self, asked: Any, values: list[float] | None, constraints: dict[str, float]) -> None:
        from optuna.trial import TrialState

        if values is None:
            self.study.tell(asked, state=TrialState.FAIL)
            return
        for name, value in constraints.items():
            asked.set_constraint(name, value)
        self.study.tell(asked, values)

    def next_batch(self, size: int) -> list[Trial]:
        """Up to ``size`` points not recorded yet, as Optuna proposes them (their trials, repeats included).

        A proposal already recorded is told its recorded values without running; one the sweep excludes,
        or one already in this batch, is told failed. A sampler that keeps proposing recorded points of a
        listed space gets unrecorded ones at random (``proposed_by`` says "fill-in").
        """
        wanted = min(size, self.target - self.done)
        asks = 0
        while len(self.pending) < wanted and asks < ASKS_PER_TRIAL * max(1, wanted):
            asks += 1
            asked = self.study.ask(self.distributions)
            key, _ = self._trials(self._point(asked.params))
            if key in self.told:
                self._tell(asked, *self.results[key])
            elif key is not None and key not in self.pending:
                self.pending[key] = asked
                self.proposed_by[key] = self.config.sampler
            else:
                self._tell(asked, None, {})
        if len(self.pending) < wanted and self.listed is not None:
            left = [(p, key) for p in self.listed if (key := self._trials(p)[0]) is not None
                    and key not in self.told and key not in self.pending]
            for point, key in self.rng.sample(left, min(len(left), wanted - len(self.pending))):
                params = self._params(point)
                self.study.enqueue_trial(params)
                self.pending[key] = self.study.ask(self.distributions)
                self.proposed_by[key] = "fill-in"
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


def run_search(search: Search, latest: Callable[[], dict[str, dict[str, Any]]],
               run_batch: Callable[[list[Trial]], bool], parallel: int) -> Search:
    """Ask, run a batch of ``parallel`` points, rebuild from the records, until the target is recorded.

    ``run_batch`` runs the trials through the sweep's executor (records land in trials.jsonl) and returns
    False when the sweep must stop (Ctrl-C, --fail-fast, a full disk).
    """
    while search.done < search.target:
        batch = search.next_batch(max(1, parallel))
        if not batch:
            break
        going_on = run_batch(batch)
        search.finish_batch(latest())
        if not going_on:
            break
    return search
