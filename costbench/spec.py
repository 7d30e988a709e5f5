"""The sweep file: its schema, --set overrides, grid expansion into trials, and trial ids.

Everything a user can get wrong in a sweep file is caught here, before any trial starts, and told in
one line that names the file, the place (YAML line:column and the key path), what is wrong and what
is allowed.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from costbench.errors import UserError, allowed_list, did_you_mean
from costbench.record import is_known_metric

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
FAMILIES = ("logreg", "mlp", "dcn", "gru", "lstm", "transformer")
SEQUENCE_FAMILIES = ("gru", "lstm", "transformer")
SIZES = ("xs", "s", "m", "l", "xl")
DEVICE_PATTERN = re.compile(r"^(cpu|cuda|cuda:\d+|auto)$")
MIN_CALLS_FOR_P99 = 662  # binomial early-stopping floor MLPerf LoadGen uses for a 99th percentile

# The sections that define what one trial computes; they (and nothing else) are hashed into its id.
TRIAL_SECTIONS = (
    "data", "model", "train", "eval", "serve", "precision", "quantize", "device", "threads", "prices",
    "seed",
)
DEFAULT_OBJECTIVES = ["auc:max", "train_cost_usd:min", "p99_ms:min", "train_peak_mem_mb:min"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitConfig(Section):
    val: float | None = Field(None, gt=0, lt=1, description="share of rows for validation (early stopping); "
                              "None: 0.1, raised up to 0.25 so that it holds about 200 bought rows")
    test: float = Field(0.2, gt=0, lt=1, description="share of rows for the test split")
    seed: int = 0

    @model_validator(mode="after")
    def _fits(self) -> SplitConfig:
        val = 0.25 if self.val is None else self.val  # the most the automatic share takes
        if val + self.test >= 0.9:
            raise ValueError(f"val + test = {val + self.test:g} leaves too little to train on; keep it < 0.9")
        return self


class DataConfig(Section):
    source: Literal["synthetic", "csv", "parquet"] = "synthetic"
    # synthetic shoppers
    rows: int = Field(200_000, ge=100)
    positive_rate: float = Field(0.08, gt=0, lt=1)
    noise: float = Field(1.0, ge=0)
    sequence_length: int = Field(20, ge=0, le=512)
    n_items: int = Field(5_000, ge=2)
    n_categories: int = Field(40, ge=2)
    seed: int = 7
    # a user's own table
    path: str | None = None
    label: str | None = None
    positive: str | int | bool | None = None
    categorical: list[str] | None = None
    numeric: list[str] | None = None
    drop: list[str] = []
    log1p: list[str] = []
    numeric_transform: Literal["auto", "standard", "robust", "quantile"] = Field(
        "auto", description="auto: sign-log1p for heavy-tailed columns, then robust scaling with smooth clipping")
    rare_min_count: int = Field(10, ge=1, description="category levels seen fewer times in train share one bucket")
    test_path: str | None = None
    dedupe: bool = True
    # both
    split: SplitConfig = SplitConfig()
    class_weight: Literal["none", "balanced"] = "none"
    oversample: float | None = Field(None, gt=0, le=1, description="target positive:negative ratio in train")

    @model_validator(mode="after")
    def _tabular_needs_path_and_label(self) -> DataConfig:
        if self.source != "synthetic":
            missing = [k for k in ("path", "label") if getattr(self, k) is None]
            if missing:
                needs = " and ".join(missing)
                raise ValueError(f"source '{self.source}' needs {needs} (the file and its label column)")
        return self

    @property
    def has_sequences(self) -> bool:
        return self.source == "synthetic" and self.sequence_length > 0


class ModelConfig(Section):
    family: Literal["logreg", "mlp", "dcn", "gru", "lstm", "transformer"] = "mlp"
    size: Literal["xs", "s", "m", "l", "xl"] = "s"
    hidden: int | None = Field(None, gt=0)
    layers: int | None = Field(None, gt=0)
    emb_dim: int | None = Field(None, gt=0)
    heads: int | None = Field(None, gt=0)
    dropout: float | None = Field(None, ge=0, lt=1)
    num_embedding: Literal["auto", "none", "periodic", "piecewise"] = Field(
        "auto", description="numeric feature embeddings (Gorishniy et al. 2022); auto: piecewise for mlp and "
                            "dcn (measured: 0.009 from Bayes AUC vs 0.014 without), none for the others")


class TrainConfig(Section):
    epochs: int | None = Field(None, gt=0, description="a cap; None: chosen from the training rows")
    batch_size: int | None = Field(None, gt=0, description="None: chosen from the training rows")
    lr: float | None = Field(None, gt=0, description="None: chosen from the batch size")
    min_steps: int = Field(2000, ge=0, description="the epoch cap never allows fewer optimisation steps")
    val_every: int | None = Field(None, gt=0, description="steps between validations; None: about one "
                                  "validation per 25+ steps on small data, several per epoch on large")
    weight_decay: float = Field(0.01, ge=0)
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    momentum: float = Field(0.9, ge=0, lt=1)
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_fraction: float = Field(0.0, ge=0, lt=1)
    grad_clip: float | None = Field(None, gt=0)
    patience: int | None = Field(16, gt=0, description="validations without improvement before stopping; "
                                 "None: never stop early")
    max_minutes: float | None = Field(None, gt=0)


class EvalConfig(Section):
    top_fraction: float = Field(0.2, gt=0, le=1)
    batch_size: int = Field(8192, gt=0)


class ServeConfig(Section):
    batch_sizes: list[int] = Field([1, 256], min_length=1)
    warmup: int = Field(20, ge=1)
    min_calls: int = Field(1000, gt=0)
    min_seconds: float = Field(0.5, ge=0)
    rounds: int = Field(3, ge=1)
    batch_size_for_objective: int | None = Field(None, gt=0)
    compile: bool = False

    @field_validator("batch_sizes")
    @classmethod
    def _positive(cls, sizes: list[int]) -> list[int]:
        if any(b <= 0 for b in sizes):
            raise ValueError(f"batch sizes must be > 0, got {sizes}")
        return sizes

    @field_validator("min_calls")
    @classmethod
    def _enough_for_p99(cls, n: int) -> int:
        if n < MIN_CALLS_FOR_P99:
            raise ValueError(
                f"min_calls {n} is too few for a p99: at least {MIN_CALLS_FOR_P99} timed calls are needed "
                "(the binomial floor MLPerf LoadGen uses)"
            )
        return n

    @model_validator(mode="after")
    def _objective_batch_measured(self) -> ServeConfig:
        b = self.batch_size_for_objective
        if b is not None and b not in self.batch_sizes:
            raise ValueError(f"batch_size_for_objective {b} is not one of batch_sizes {self.batch_sizes}")
        return self

    @property
    def objective_batch_size(self) -> int:
        return self.batch_size_for_objective or self.batch_sizes[0]


class QuantizeConfig(Section):
    scheme: Literal["dynamic", "weight_only", "legacy_dynamic"] = "dynamic"
    compile: bool = Field(True, description="serve torchao int8 through torch.compile (eager is 4-9x slower)")


class PricesConfig(Section):
    cpu_core_hour_usd: float = Field(0.05, ge=0)
    gpu_hour_usd: float = Field(3.5, ge=0, description="for a GPU not named in gpu_hour_usd_by_model")
    gpu_hour_usd_by_model: dict[str, float] = {"H200": 4.5, "H100": 3.5, "A100": 2.0, "L4": 0.8, "T4": 0.5}


class ExecutorConfig(Section):
    kind: Literal["local", "ray"] = "local"
    workers: int | None = Field(None, gt=0)
    address: str | None = None
    trial_timeout: float | None = Field(None, gt=0)
    retries: int = Field(0, ge=0)
    runtime_env: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value


class TrialConfig(Section):
    """Everything that defines one trial; its canonical JSON is hashed into the trial id."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    serve: ServeConfig = ServeConfig()
    precision: Literal["fp32", "fp16", "bf16", "int8"] = "fp32"
    quantize: QuantizeConfig = QuantizeConfig()
    device: str = "cpu"
    threads: int | None = Field(None, gt=0)
    prices: PricesConfig = PricesConfig()
    seed: int = 0

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        if not DEVICE_PATTERN.match(device):
            raise ValueError(f"unknown device '{device}'; allowed: cpu, cuda, cuda:N, auto")
        return device

    @model_validator(mode="after")
    def _model_fits_data(self) -> TrialConfig:
        if self.model.family in SEQUENCE_FAMILIES and not self.data.has_sequences:
            why = (
                "data.sequence_length is 0" if self.data.source == "synthetic"
                else f"{self.data.source} data carries no session sequences"
            )
            raise ValueError(
                f"model family '{self.model.family}' reads the session sequence, but {why}; "
                f"use one of logreg, mlp, dcn"
            )
        from costbench.model_presets import resolve_hparams  # torch-free

        resolve_hparams(self.model)
        return self


class SweepSpec(TrialConfig):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    grid: dict[str, list[Any]] = {}
    include: list[dict[str, Any]] = []
    exclude: list[dict[str, Any]] = []
    repeats: int = Field(1, gt=0)
    objectives: list[str] = Field(DEFAULT_OBJECTIVES, min_length=1)
    executor: ExecutorConfig = ExecutorConfig()

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, objectives: list[str]) -> list[str]:
        for obj in objectives:
            parse_objective(obj)
        return objectives

    def trial_base(self) -> dict[str, Any]:
        dump = self.model_dump(mode="json")
        return {k: dump[k] for k in TRIAL_SECTIONS}


def parse_objective(text: str) -> tuple[str, str]:
    """'auc:max' -> ('auc', 'max'); raises ValueError with the allowed forms."""
    metric, sep, direction = str(text).partition(":")
    if not sep or direction not in ("max", "min"):
        raise ValueError(f"objective '{text}' needs a direction: write '{metric}:max' or '{metric}:min'")
    if not is_known_metric(metric):
        from costbench.record import METRICS

        raise ValueError(f"objective '{text}' names an unknown metric '{metric}'{did_you_mean(metric, METRICS)}")
    return metric, direction


# ----------------------------------------------------------------------------------------- trials


@dataclass(frozen=True)
class Trial:
    """One grid point: picklable and JSON-serialisable, so any executor can run it anywhere."""

    id: str
    group: str
    repeat: int
    axes: dict[str, Any]
    config: dict[str, Any]
    cache_dir: str | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "group": self.group, "repeat": self.repeat, "axes": self.axes,
                "config": self.config, "cache_dir": self.cache_dir}


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def trial_id(config: dict[str, Any]) -> str:
    """A short, stable hash of the resolved config: key order and YAML layout never change it."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file and the trials it expands to."""

    spec: SweepSpec
    path: Path
    raw: dict[str, Any]
    trials: list[Trial]
    warnings: list[str]

    @property
    def axes(self) -> list[str]:
        return list(self.spec.grid)


# ----------------------------------------------------------------------------------------- loading


class _Locator:
    """Maps key paths ('train.batch_size', 'grid.precision[1]') to YAML 'line:column'."""

    def __init__(self, node: yaml.Node | None) -> None:
        self._marks: dict[str, str] = {}
        if node is not None:
            self._walk(node, "")

    def _walk(self, node: yaml.Node, path: str) -> None:
        self._marks.setdefault(path, f"{node.start_mark.line + 1}:{node.start_mark.column + 1}")
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = f"{path}.{key.value}" if path else str(key.value)
                self._marks[child] = f"{key.start_mark.line + 1}:{key.start_mark.column + 1}"
                self._walk(value, child)
                self._marks[child] = f"{key.start_mark.line + 1}:{key.start_mark.column + 1}"
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, f"{path}[{i}]")

    def where(self, file: Path, path: str) -> str:
        probe = path
        while probe:
            if probe in self._marks:
                return f"{file}:{self._marks[probe]}: {path}" if path else f"{file}:{self._marks[probe]}"
            probe = re.sub(r"(\[\d+\]|\.[^.\[]+|^[^.\[]+)$", "", probe)
        return f"{file}: {path}" if path else str(file)


def read_sweep_file(path: Path) -> tuple[dict[str, Any], _Locator]:
    """Read and parse a sweep file, turning every way it can be unreadable into a UserError."""
    if not path.exists():
        raise UserError(f"no such file; check the path (cwd is {Path.cwd()})", where=str(path))
    if path.is_dir():
        yamls = sorted(p.name for p in path.glob("*.y*ml"))
        hint = f"; it holds {', '.join(yamls[:5])}" if yamls else ""
        raise UserError(f"is a directory, not a sweep file{hint}", where=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the file: {exc}", where=str(path)) from None
    if not text.strip():
        raise UserError("the file is empty; a sweep needs at least 'name:' (see sweeps/quickstart.yaml)",
                        where=str(path))
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"broken YAML: {problem}", where=loc) from None
    if not isinstance(raw, dict):
        raise UserError(
            f"the top level must be a mapping of sections (name:, data:, grid:, ...), not {_kind(raw)}",
            where=str(path),
        )
    return raw, _Locator(node)


def parse_overrides(overrides: list[str]) -> list[tuple[list[str], Any]]:
    """'train.epochs=5' -> (['train', 'epochs'], 5); values are parsed as YAML."""
    parsed = []
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--set '{item}' is not KEY=VALUE; e.g. --set train.epochs=5")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "unparseable"
            raise UserError(f"--set '{item}': the value is not valid YAML ({problem}); quote it or fix brackets") \
                from None
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
                raise UserError(f"--set {'.'.join(parts)}: '{part}' is not a section, so it has no keys")
            target = nxt
        target[parts[-1]] = value
    return raw


def load_sweep(path: str | Path, overrides: list[str] | None = None, cache_dir: str | None = None) -> Sweep:
    """Read, validate and expand a sweep file. Raises UserError with one clear line on any mistake."""
    path = Path(path)
    raw, locator = read_sweep_file(path)
    raw = apply_overrides(raw, overrides or [])
    try:
        spec = SweepSpec.model_validate(_with_absolute_paths(raw, path.parent))
    except ValidationError as exc:
        raise _user_error(exc, path, locator, SweepSpec) from None
    trials = _expand(spec, path, locator, cache_dir)
    warnings = _warnings(spec, trials)
    return Sweep(spec=spec, path=path, raw=raw, trials=trials, warnings=warnings)


def _with_absolute_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Data paths are relative to the sweep file, so a sweep runs the same from any directory."""
    data = raw.get("data")
    if not isinstance(data, dict):
        return raw
    data = dict(data)
    for key in ("path", "test_path"):
        if isinstance(data.get(key), str) and not Path(data[key]).is_absolute():
            data[key] = str((base / data[key]).resolve())
    return {**raw, "data": data}


def _expand(spec: SweepSpec, path: Path, locator: _Locator, cache_dir: str | None) -> list[Trial]:
    base = spec.trial_base()
    for key, values in spec.grid.items():
        _check_key(base, key, locator.where(path, f"grid.{key}"))
        if not values:
            raise UserError("grid axis is empty; give it at least one value or remove it",
                            where=locator.where(path, f"grid.{key}"))
        for i, value in enumerate(values):
            _validate_point(_assign(base, {key: value}), path, locator, f"grid.{key}[{i}]")
    keys = list(spec.grid)
    points = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*spec.grid.values())]
    for i, rule in enumerate(spec.exclude):
        where = locator.where(path, f"exclude[{i}]")
        for key in rule:
            _check_key(base, key, where)
        if not any(_matches(_assign(base, p), rule) for p in points):
            raise UserError(f"exclude {rule} can never match a grid point; check its keys and values against "
                            "the grid", where=where)
    points = [p for p in points if not any(_matches(_assign(base, p), rule) for rule in spec.exclude)]
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
        config = _validate_point(_assign(base, point), path, locator, "grid")
        group = trial_id({k: v for k, v in config.items() if k != "seed"})
        for repeat in range(spec.repeats):
            resolved = {**config, "seed": config["seed"] + repeat}
            tid = trial_id(resolved)
            axes = {k: _get(resolved, k) for k in (*keys, *point) if k not in ("seed",) or spec.repeats == 1}
            trials.setdefault(tid, Trial(id=tid, group=group, repeat=repeat, axes=axes, config=resolved,
                                         cache_dir=cache_dir))
    return list(trials.values())


def _validate_point(config: dict[str, Any], path: Path, locator: _Locator, where: str) -> dict[str, Any]:
    try:
        return TrialConfig.model_validate(config).model_dump(mode="json")
    except ValidationError as exc:
        raise _user_error(exc, path, locator, TrialConfig, prefix=where) from None


def _check_key(base: dict[str, Any], key: str, where: str) -> None:
    node: Any = base
    for i, part in enumerate(key.split(".")):
        if not isinstance(node, dict) or part not in node:
            options = sorted(node) if isinstance(node, dict) else []
            scope = ".".join(key.split(".")[:i]) or "the config"
            raise UserError(
                f"'{key}' names nothing in the config{did_you_mean(part, options)}; "
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
    node: Any = config
    for part in key.split("."):
        node = node[part]
    return node


def _matches(config: dict[str, Any], rule: dict[str, Any]) -> bool:
    return all(_get(config, k) == v for k, v in rule.items())


def _warnings(spec: SweepSpec, trials: list[Trial]) -> list[str]:
    wants_cuda = sorted({t.config["device"] for t in trials if t.config["device"].startswith("cuda")})
    if not wants_cuda:
        return []
    from costbench.measure.environment import cuda_device_count

    if cuda_device_count() == 0:
        n = sum(t.config["device"].startswith("cuda") for t in trials)
        return [f"{n} trial(s) ask for {', '.join(wants_cuda)} but this machine has no CUDA GPU: "
                "they will be recorded as skipped"]
    return []


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean",
            type(None): "nothing"}.get(type(value), type(value).__name__)


def _user_error(exc: ValidationError, path: Path, locator: _Locator, model: type[BaseModel],
                prefix: str | None = None) -> UserError:
    """Turn pydantic's first error into one line: where, what is wrong, what is allowed."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    key_path = ".".join(loc)
    for i in range(len(loc) - 1, 0, -1):
        if loc[i].isdigit():
            key_path = key_path.replace(f".{loc[i]}", f"[{loc[i]}]", 1)
    kind, got = err["type"], err.get("input")
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        what = "section" if len(loc) == 1 else "key"
        message = f"unknown {what} '{loc[-1]}'{did_you_mean(loc[-1], allowed)}; allowed: {allowed_list(allowed)}"
    elif kind == "literal_error":
        expected = re.findall(r"'([^']*)'", err["ctx"]["expected"])
        message = f"unknown value '{got}'{did_you_mean(got, expected)}; allowed: {allowed_list(expected)}"
    elif kind == "missing":
        message = "is required"
    elif kind == "value_error":
        message = str(err["ctx"]["error"])
    else:
        message = f"{err['msg'].lower()} (got {json.dumps(got, default=str)})"
    if prefix:
        redundant = not key_path or prefix.startswith(f"grid.{key_path}[")
        return UserError(message if redundant else f"{key_path}: {message}", where=locator.where(path, prefix))
    return UserError(message, where=locator.where(path, key_path))


def _fields_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    for part in loc:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
