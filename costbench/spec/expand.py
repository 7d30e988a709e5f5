"""From a validated sweep to its trials: --set overrides, grid/include/exclude, trial ids.

A trial id is a short hash of the trial's resolved config (canonical JSON) and of its data's content
fingerprint, so key order and YAML layout never change it, a resumed sweep finds the trials it already
ran, and a changed data file makes new trials.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from costbench.data.fingerprint import data_fingerprint
from costbench.errors import UserError, allowed_list, did_you_mean, echo
from costbench.spec.bounded_yaml import RejectedYAML, load_yaml
from costbench.spec.schema import GridRange, SweepSpec, TrialConfig
from costbench.spec.source import Locator, validation_error

MAX_TRIALS = 10_000  # each point is validated up front; a bigger sweep is a typo or a job for several sweeps


@dataclass(frozen=True)
class Trial:
    """One grid point: picklable and JSON-serialisable, so any executor can run it anywhere."""

    id: str
    group: str
    repeat: int
    axes: dict[str, Any]
    config: dict[str, Any]
    data_id: str  # the data's content fingerprint, part of the id: changed data is a new trial
    cache_dir: str | None = field(default=None, compare=False)
    resources: dict[str, Any] | None = field(default=None, compare=False)  # the engine's resource plan

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "group": self.group, "repeat": self.repeat, "axes": self.axes,
                "config": self.config, "data_id": self.data_id, "cache_dir": self.cache_dir,
                "resources": self.resources}


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def trial_id(config: dict[str, Any], data_id: str) -> str:
    """A short, stable hash of the resolved config and the data's fingerprint: key order and YAML layout
    never change it; editing the data file does."""
    return hashlib.sha256(canonical_json({"config": config, "data_id": data_id}).encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------------------- --set


def parse_overrides(overrides: list[str]) -> list[tuple[list[str], Any]]:
    """'train.epochs=5' -> (['train', 'epochs'], 5); values are parsed as YAML."""
    parsed = []
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--set '{echo(item)}' is not KEY=VALUE; e.g. --set train.epochs=5")
        try:
            value = load_yaml(text)[1] if text.strip() else ""
        except RejectedYAML as exc:
            raise UserError(f"--set '{echo(item)}': {exc.problem}") from None
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "unparseable"
            raise UserError(f"--set '{echo(item)}': the value is not valid YAML ({problem}); quote it or fix "
                            "brackets") from None
        parts = key.split(".")
        if parts[0] in ("grid",) and len(parts) > 1:
            parts = ["grid", ".".join(parts[1:])]
        parsed.append((parts, value))
    return parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    for parts, value in parse_overrides(overrides):
        target = raw
        for part in parts[:-1]:
            nxt = target.get(part)
            if nxt is None:
                nxt = target[part] = {}
            if not isinstance(nxt, dict):
                raise UserError(f"--set {echo('.'.join(parts))}: '{echo(part)}' is not a section, so it has no keys")
            target = nxt
        target[parts[-1]] = value
    return raw


# ----------------------------------------------------------------------------------------- grid


def check_space(spec: SweepSpec, path: Path, locator: Locator) -> dict[str, list[Any] | GridRange]:
    """Each grid axis checked before any trial runs: its key, every listed value (kept as a trial sees it,
    after validation), a range's two ends. A range outside a search is an error."""
    base = spec.trial_base()
    space: dict[str, list[Any] | GridRange] = {}
    for key, axis in spec.grid.items():
        where = locator.where(path, f"grid.{key}")
        _check_key(base, key, where)
        if isinstance(axis, GridRange):
            _check_range(spec, key, axis, path, locator)
            space[key] = axis
            continue
        if not axis:
            raise UserError("grid axis is empty; give it at least one value or remove it", where=where)
        space[key] = [_axis_value(spec, base, key, value, path, locator, f"grid.{key}[{i}]")
                      for i, value in enumerate(axis)]
    if spec.include and spec.search is not None and any(isinstance(a, GridRange) for a in space.values()):
        raise UserError("include adds points outside the grid's axes, which a search over ranges cannot propose; "
                        "move its values into the grid", where=locator.where(path, "include"))
    return space


def _axis_value(spec: SweepSpec, base: dict[str, Any], key: str, value: Any, path: Path, locator: Locator,
                where: str) -> Any:
    """One grid value as a trial sees it, validated on the base config or, where it depends on another axis
    (``model.params`` of a tree family named by ``model.family``), beside one of that axis's values; the
    base's error when no such pairing is valid. Each point is validated again when the grid expands."""
    others = [{other: v} for other, axis in spec.grid.items() if other != key and not isinstance(axis, GridRange)
              for v in axis]
    first: UserError | None = None
    for extra in ({}, *others):
        try:
            return _get(_validate_point(_assign(base, {**extra, key: value}), path, locator, where), key)
        except UserError as exc:
            first = first or exc
    assert first is not None
    raise first


def _check_range(spec: SweepSpec, key: str, axis: GridRange, path: Path, locator: Locator) -> None:
    where = locator.where(path, f"grid.{key}")
    if spec.search is None:
        raise UserError(f"is a range {axis.describe()}, which only a search samples; add a search section "
                        "(e.g. search: {n_trials: 20}) or give a list of values", where=where)
    if spec.search.sampler == "grid":
        raise UserError(f"is a range {axis.describe()}, but the grid sampler runs listed values only; give a "
                        "list of values or use sampler tpe, nsga2 or random", where=where)
    base = spec.trial_base()
    for end in ("low", "high"):
        config = _validate_point(_assign(base, {key: getattr(axis, end)}), path, locator, f"grid.{key}.{end}")
        resolved = _get(config, key)
        if not axis.is_int and isinstance(resolved, int) and not isinstance(resolved, bool):
            raise UserError(f"'{echo(key)}' is an integer setting: give the range's low, high (and step) as "
                            "integers", where=where)


def corners(space: dict[str, list[Any] | GridRange]) -> dict[str, list[Any]]:
    """Each axis's values, a range's as its two ends: the points a search sweep checks and lists up front."""
    return {k: [v.low, v.high] if isinstance(v, GridRange) else v for k, v in space.items()}


def expand(spec: SweepSpec, path: Path, locator: Locator, cache_dir: str | None,
           space: dict[str, list[Any] | GridRange], data_ids: dict[str, str]) -> list[Trial]:
    """Every trial of the sweep (a search over ranges: of its corners), each point validated (and located)."""
    base = spec.trial_base()
    grid = corners(space)
    keys = list(grid)
    size = math.prod(len(values) for values in grid.values()) * spec.repeats
    if size > MAX_TRIALS:
        what = "the grid expands" if spec.repeats == 1 else f"the grid times repeats ({spec.repeats:,}) comes"
        raise UserError(f"{what} to {size:,} trials, more than the {MAX_TRIALS:,} one sweep may hold; drop axes, "
                        "values or repeats, or split it into several sweeps",
                        where=locator.where(path, "grid" if spec.grid else "repeats"))
    points = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]
    for i, rule in enumerate(spec.exclude):
        where = locator.where(path, f"exclude[{i}]")
        for key in rule:
            _check_key(base, key, where)
        if not any(_matches(_assign(base, p), rule) for p in points):
            raise UserError(f"exclude {echo(rule)} can never match a grid point; check its keys and values against "
                            "the grid", where=where)
    points = [p for p in points if not excluded(spec, p)]
    for i, extra in enumerate(spec.include):
        for key in extra:
            _check_key(base, key, locator.where(path, f"include[{i}]"))
        _validate_point(_assign(base, extra), path, locator, f"include[{i}]")
        points.append(dict(extra))
    if not points:
        raise UserError("the grid expands to zero trials (every point is excluded); loosen 'exclude'",
                        where=str(path))
    trials: dict[str, Trial] = {}
    for point in points:
        for trial in point_trials(spec, point, path, locator, cache_dir, data_ids):
            trials.setdefault(trial.id, trial)
    return list(trials.values())


def excluded(spec: SweepSpec, point: dict[str, Any]) -> bool:
    base = spec.trial_base()
    return any(_matches(_assign(base, point), rule) for rule in spec.exclude)


def point_trials(spec: SweepSpec, point: dict[str, Any], path: Path, locator: Locator, cache_dir: str | None,
                 data_ids: dict[str, str]) -> list[Trial]:
    """One point's trials (its repeats): the config validated, the id a hash of it and of the data's
    fingerprint. ``data_ids`` caches each dataset's fingerprint (canonical data config -> id)."""
    try:
        config = _validate_point(_assign(spec.trial_base(), point), path, locator, "grid")
    except UserError as exc:  # each value is valid on its own (check_space): this combination is not
        combination = ", ".join(f"{k}={echo(v)}" for k, v in point.items())
        raise UserError(f"the point {combination} is invalid: {exc.message}; add it to exclude if the "
                        "combination is not meant", where=exc.where) from None
    data_key = canonical_json(config["data"])
    if data_key not in data_ids:
        data_ids[data_key] = data_fingerprint(config["data"])
    data_id = data_ids[data_key]
    group = trial_id({k: v for k, v in config.items() if k != "seed"}, data_id)
    trials = []
    for repeat in range(spec.repeats):
        resolved = {**config, "seed": config["seed"] + repeat}
        axes = {k: _get(resolved, k) for k in (*spec.grid, *point) if k not in ("seed",) or spec.repeats == 1}
        trials.append(Trial(id=trial_id(resolved, data_id), group=group, repeat=repeat, axes=axes, config=resolved,
                            data_id=data_id, cache_dir=cache_dir))
    return trials


def _validate_point(config: dict[str, Any], path: Path, locator: Locator, where: str) -> dict[str, Any]:
    try:
        return TrialConfig.model_validate(config).trial_dump()
    except ValidationError as exc:
        raise validation_error(exc, path, locator, TrialConfig, prefix=where) from None


def _check_key(base: dict[str, Any], key: str, where: str) -> None:
    node: Any = base
    for i, part in enumerate(key.split(".")):
        if node is None and i:
            off = echo(".".join(key.split(".")[:i]))
            raise UserError(f"'{echo(key)}' is inside {off}, which is off (null) in this sweep; set {off} at the "
                            f"top level to sweep its keys, or make {off} itself the axis", where=where)
        if not isinstance(node, dict) or part not in node:
            options = sorted(node) if isinstance(node, dict) else []
            scope = echo(".".join(key.split(".")[:i])) or "the config"
            raise UserError(
                f"'{echo(key)}' names nothing in the config{did_you_mean(part, options)}; "
                f"keys of {scope}: {allowed_list(options)}",
                where=where,
            )
        node = node[part]


def _assign(base: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(base)
    for key, value in point.items():
        *parents, leaf = key.split(".")
        target = config
        for part in parents:
            target = target[part]
        target[leaf] = value
    return config


def _get(config: dict[str, Any], key: str) -> Any:
    """The value at a dotted key; None below a section that is off (``compress`` of an uncompressed trial)."""
    node: Any = config
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _matches(config: dict[str, Any], rule: dict[str, Any]) -> bool:
    return all(_get(config, k) == v for k, v in rule.items())
