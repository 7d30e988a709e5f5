"""The sweep file's schema: one pydantic section per YAML section, and objective parsing.

The allowed values of every enumerated field are written once, as a ``Literal``; the tuples other
modules iterate over (``PRECISIONS``, ``FAMILIES``, ...) are read from those annotations.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from costbench.errors import did_you_mean, echo
from costbench.record import is_known_metric

Precision = Literal["fp32", "fp16", "bf16", "int8"]
Family = Literal["logreg", "mlp", "dcn", "gru", "lstm", "transformer", "lightgbm", "xgboost", "catboost",
                 "random_forest"]
Size = Literal["xs", "s", "m", "l", "xl"]
DataSource = Literal["synthetic", "csv", "parquet"]
Optimizer = Literal["adamw", "adam", "sgd"]
Schedule = Literal["constant", "cosine"]
QuantizeScheme = Literal["dynamic", "weight_only", "legacy_dynamic", "ort_dynamic", "ort_static"]
Runtime = Literal["eager", "compile", "onnxruntime"]
Scenario = Literal["none", "single_stream", "server", "offline"]
ExecutorKind = Literal["local", "ray"]

PRECISIONS: tuple[str, ...] = get_args(Precision)
FAMILIES: tuple[str, ...] = get_args(Family)
SIZES: tuple[str, ...] = get_args(Size)
DATA_SOURCES: tuple[str, ...] = get_args(DataSource)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
SCHEDULES: tuple[str, ...] = get_args(Schedule)
QUANTIZE_SCHEMES: tuple[str, ...] = get_args(QuantizeScheme)
RUNTIMES: tuple[str, ...] = get_args(Runtime)
EXECUTOR_KINDS: tuple[str, ...] = get_args(ExecutorKind)
SEQUENCE_FAMILIES: tuple[str, ...] = ("gru", "lstm", "transformer")  # the families that read the session sequence
DEVICE_PATTERN = re.compile(r"^(cpu|cuda|cuda:\d+|auto)$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MAX_NAME_LENGTH = 100  # the name becomes a directory name (results/<name>); file systems stop at 255 bytes
MIN_CALLS_FOR_P99 = 662  # binomial early-stopping floor MLPerf LoadGen uses for a 99th percentile

# The sections that define what one trial computes; they (and nothing else) are hashed into its id.
# ``compress`` is left out of a trial's config while it is off, so the ids of uncompressed trials are the
# ones they had before compression existed (see ``trial_dump``).
TRIAL_SECTIONS = (
    "data", "model", "train", "eval", "serve", "precision", "quantize", "device", "threads", "prices",
    "seed", "compress",
)
PRUNE_METHODS: tuple[str, ...] = ("structured",)
DEFAULT_OBJECTIVES = ["auc:max", "train_cost_usd:min", "p99_ms:min", "model_train_mem_mb:min"]


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
    source: DataSource = "synthetic"
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
    family: Family = "mlp"
    size: Size = "s"
    hidden: int | None = Field(None, gt=0)
    layers: int | None = Field(None, gt=0)
    emb_dim: int | None = Field(None, gt=0)
    heads: int | None = Field(None, gt=0)
    dropout: float | None = Field(None, ge=0, lt=1)
    num_embedding: Literal["auto", "none", "periodic", "piecewise"] = Field(
        "auto", description="numeric feature embeddings (Gorishniy et al. 2022); auto: piecewise for mlp and "
                            "dcn (measured: 0.009 from Bayes AUC vs 0.014 without), none for the others")
    params: dict[str, Any] = Field({}, description="a tree library's own hyperparameters, over the size preset")
    where: ClassVar[str] = "model"  # the key path errors name

    @model_validator(mode="after")
    def _params_fit_family(self) -> ModelConfig:
        from costbench.tree_presets import TREE_FAMILIES, check_params  # library-free

        check_params(self.family, self.params)
        if self.family in TREE_FAMILIES:
            set_ = [k for k in ("hidden", "layers", "emb_dim", "heads", "dropout") if getattr(self, k) is not None]
            if set_:
                raise ValueError(f"{self.where}.{set_[0]} shapes a network; '{self.family}' takes its own "
                                 f"hyperparameters under {self.where}.params")
        return self


class TrainConfig(Section):
    epochs: int | None = Field(None, gt=0, description="a cap; None: chosen from the training rows")
    batch_size: int | None = Field(None, gt=0, description="None: chosen from the training rows")
    lr: float | None = Field(None, gt=0, description="None: chosen from the batch size")
    min_steps: int = Field(2000, ge=0, description="the epoch cap never allows fewer optimisation steps")
    val_every: int | None = Field(None, gt=0, description="steps between validations; None: about one "
                                  "validation per 25+ steps on small data, several per epoch on large")
    weight_decay: float = Field(0.01, ge=0)
    optimizer: Optimizer = "adamw"
    momentum: float = Field(0.9, ge=0, lt=1)
    schedule: Schedule = "constant"
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
    runtime: Runtime = Field("eager", description="eager PyTorch, torch.compile, or the exported graph in ONNX Runtime")
    compile: bool = Field(False, description="older spelling of runtime: compile; kept equal to runtime == compile")
    scenario: Scenario = Field("none", description="an MLPerf LoadGen scenario run after the latency phase")
    slo_ms: float = Field(60.0, gt=0, description="server: the p99 bound (MLPerf DLRM-v2's is 60 ms)")
    max_batch: int = Field(256, gt=0, description="server/offline: the dynamic batcher's largest batch")
    max_wait_ms: float = Field(2.0, ge=0, description="server: longest a sample waits for its batch to fill")
    scenario_seconds: float = Field(2.0, gt=0, le=600, description="minimum duration of one LoadGen run")
    search_steps: int = Field(6, ge=1, le=20, description="server: LoadGen runs of the QPS bisection")

    @model_validator(mode="before")
    @classmethod
    def _fold_compile(cls, value: Any) -> Any:
        """``serve.compile: true`` (v0.1) is ``serve.runtime: compile``; afterwards ``compile`` only mirrors
        the runtime, so both spellings make the same trial (and the same id)."""
        if not isinstance(value, dict):
            return value
        value = dict(value)
        compile, runtime = value.get("compile", False), value.get("runtime", "eager")
        if compile is True:
            if runtime not in ("eager", "compile"):
                raise ValueError(f"serve.compile: true contradicts serve.runtime: {echo(runtime)}; drop "
                                 "serve.compile (write serve.runtime: compile for torch.compile)")
            value["runtime"] = "compile"
        if isinstance(value.get("runtime", "eager"), str) and compile in (True, False):
            value["compile"] = value.get("runtime", "eager") == "compile"
        return value

    @field_validator("batch_sizes")
    @classmethod
    def _positive(cls, sizes: list[int]) -> list[int]:
        if any(b <= 0 for b in sizes):
            raise ValueError(f"batch sizes must be > 0, got {echo(sizes)}")
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
    scheme: QuantizeScheme = "dynamic"
    compile: bool = Field(True, description="serve torchao int8 through torch.compile (eager is 4-9x slower)")


class PricesConfig(Section):
    cpu_core_hour_usd: float = Field(0.05, ge=0)
    gpu_hour_usd: float = Field(3.5, ge=0, description="for a GPU not named in gpu_hour_usd_by_model")
    gpu_hour_usd_by_model: dict[str, float] = {"H200": 4.5, "H100": 3.5, "A100": 2.0, "L4": 0.8, "T4": 0.5}


class ExecutorConfig(Section):
    kind: ExecutorKind = "local"
    workers: int | None = Field(None, gt=0)
    address: str | None = None
    trial_timeout: float | None = Field(None, gt=0)
    retries: int = Field(0, ge=0)
    runtime_env: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value


class TeacherConfig(ModelConfig):
    """The model a student is distilled from: model keys flat (``family``, ``size``, ``hidden``, ``params``
    ...), its own ``train`` section and ``seed``. It shares the student's data, device and threads, trains
    in fp32, and does not follow the student's ``train`` or ``seed``, so every student of a sweep that
    names the same teacher reuses one trained teacher (its repeats included)."""

    train: TrainConfig = TrainConfig()
    seed: int = 0
    where: ClassVar[str] = "compress.distill.teacher"


class DistillConfig(Section):
    """Knowledge distillation (Hinton et al. 2015) for a binary label; the loss is in compress/distill.py."""

    teacher: TeacherConfig
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the labels; 1 - alpha weighs the teacher")
    temperature: float = Field(1.0, gt=0, description="both logits are divided by it before the soft target")
    extra_rows: int = Field(0, ge=0, le=10_000_000, description="unlabelled synthetic rows (same shop, fresh "
                            "sessions) the teacher labels and the student also trains on; synthetic data only")


class PruneConfig(Section):
    """Structured pruning after training, then fine-tuning with the same loop (costbench/compress/prune.py)."""

    amount: float = Field(gt=0, lt=1, description="share of the parameters to remove as whole units")
    method: Literal["structured"] = Field("structured", description="whole hidden units and embedding "
                                          "dimensions removed, the layers physically narrower")
    finetune_epochs: int = Field(1, gt=0, description="epochs of training after the prune (same loop, same lr)")


class CompressConfig(Section):
    """Compression applied at training time; serving (precision, runtime) treats the result like any model."""

    distill: DistillConfig | None = None
    prune: PruneConfig | None = None

    @property
    def active(self) -> bool:
        return self.distill is not None or self.prune is not None


def check_model_fits_data(model: ModelConfig, data: DataConfig) -> None:
    """The model can be built on this data: a sequence family needs sequences; a network's preset resolves."""
    if model.family in SEQUENCE_FAMILIES and not data.has_sequences:
        why = (
            "data.sequence_length is 0" if data.source == "synthetic"
            else f"{data.source} data carries no session sequences"
        )
        raise ValueError(
            f"{model.where} family '{model.family}' reads the session sequence, but {why}; use one of logreg, mlp, dcn"
        )
    from costbench.model_presets import resolve_hparams  # torch-free
    from costbench.tree_presets import TREE_FAMILIES

    if model.family not in TREE_FAMILIES:
        resolve_hparams(model)


class TrialConfig(Section):
    """Everything that defines one trial; its canonical JSON is hashed into the trial id."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    serve: ServeConfig = ServeConfig()
    precision: Precision = "fp32"
    quantize: QuantizeConfig = QuantizeConfig()
    device: str = "cpu"
    threads: int | None = Field(None, gt=0)
    prices: PricesConfig = PricesConfig()
    seed: int = 0
    compress: CompressConfig = CompressConfig()

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        if not DEVICE_PATTERN.match(device):
            raise ValueError(f"unknown device '{echo(device)}'; allowed: cpu, cuda, cuda:N, auto")
        return device

    @model_validator(mode="after")
    def _model_fits_data(self) -> TrialConfig:
        check_model_fits_data(self.model, self.data)
        distill = self.compress.distill
        if distill is not None:
            check_model_fits_data(distill.teacher, self.data)
            if distill.extra_rows and self.data.source != "synthetic":
                raise ValueError(f"compress.distill.extra_rows needs synthetic data (it draws fresh sessions of "
                                 f"the same shop); {self.data.source} data has no unlabelled rows to draw: set it "
                                 "to 0")
        return self

    def trial_dump(self) -> dict[str, Any]:
        """The JSON config hashed into the trial id; ``compress`` only when it is on (stable old ids)."""
        dump = self.model_dump(mode="json")
        if not self.compress.active:
            del dump["compress"]
        return dump


SamplerName = Literal["tpe", "nsga2", "random", "grid"]
RANGE_KEYS = ("low", "high", "log", "step")


class GridRange(Section):
    """A grid axis a search samples from (``{low, high, log, step}``): Optuna's suggest_int when low, high
    (and step) are integers, else suggest_float. Only a search samples it; a plain grid needs a list."""

    low: float | int
    high: float | int
    log: bool = False
    step: float | int | None = None

    @property
    def is_int(self) -> bool:
        return all(isinstance(v, int) for v in (self.low, self.high, self.step) if v is not None)

    def describe(self) -> str:
        extra = " log" if self.log else f" step {self.step:g}" if self.step is not None else ""
        return f"{{low {self.low:g}, high {self.high:g}{extra}}}"


def _number(text: Any, name: str) -> float | int:
    """A YAML number (PyYAML reads 1e-4 as text: accepted as pydantic accepts it)."""
    if isinstance(text, str):
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
    if isinstance(text, bool) or not isinstance(text, (int, float)) or text != text:
        raise ValueError(f"range {name} must be a number (got {echo(text)})")
    return text


def parse_range(raw: dict[str, Any]) -> GridRange:
    """``{low, high, log, step}`` checked one rule at a time, each broken rule one line that says the fix."""
    unknown = [k for k in raw if k not in RANGE_KEYS]
    if unknown:
        raise ValueError(f"a range takes {', '.join(RANGE_KEYS)}; unknown key '{echo(unknown[0])}'"
                         f"{did_you_mean(str(unknown[0]), RANGE_KEYS)}")
    if "low" not in raw or "high" not in raw:
        raise ValueError("a range needs low and high, e.g. {low: 0.0001, high: 0.01, log: true}")
    low, high = _number(raw["low"], "low"), _number(raw["high"], "high")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"range log must be true or false (got {echo(log)})")
    step = None if raw.get("step") is None else _number(raw["step"], "step")
    if not low < high:
        raise ValueError(f"range low ({low:g}) must be below high ({high:g})")
    if log and low <= 0:
        raise ValueError(f"a log range needs low > 0 (got low {low:g}); raise low or drop log")
    if step is not None and step <= 0:
        raise ValueError(f"range step must be > 0 (got {step:g})")
    if log and step is not None:
        raise ValueError("range log and step do not combine (Optuna samples a log range without a step); "
                         "drop one")
    if step is not None and abs((n := (high - low) / step) - round(n)) > 1e-9 * max(1.0, abs(n)):
        raise ValueError(f"range high - low ({high - low:g}) is not a multiple of step ({step:g}); "
                         "move high onto the step")
    return GridRange(low=low, high=high, log=log, step=step)


def _axis(value: Any) -> list[Any] | GridRange:
    if isinstance(value, dict):
        return parse_range(value)
    if isinstance(value, GridRange | list):
        return value
    raise ValueError(f"give a list of values, or a range {{low, high, log, step}} for a search "
                     f"(got {echo(value)})")


Axis = Annotated[list[Any] | GridRange, BeforeValidator(_axis)]
CONSTRAINT_PATTERN = re.compile(r"^\s*([A-Za-z0-9_@.]+)\s*(<=|>=)\s*(-?[0-9.eE+-]+)\s*$")


class SearchConfig(Section):
    """Optuna picks which grid points to run (costbench/search.py): grid lists are categorical choices,
    ranges are sampled by suggest_int / suggest_float."""

    sampler: SamplerName = "tpe"
    n_trials: int = Field(gt=0, description="grid points to run (repeats of a point count once)")
    seed: int = 0
    constraints: list[str] = []

    @field_validator("constraints")
    @classmethod
    def _constraints(cls, constraints: list[str]) -> list[str]:
        for text in constraints:
            parse_constraint(text)
        return constraints


def parse_constraint(text: str) -> tuple[str, str, float]:
    """'p99_ms <= 5' -> ('p99_ms', '<=', 5.0); raises ValueError with the allowed form."""
    match = CONSTRAINT_PATTERN.match(str(text))
    try:
        bound = float(match.group(3)) if match else None
    except ValueError:
        bound = None
    if match is None or bound is None:
        raise ValueError(f"constraint '{echo(text)}' must read METRIC <= NUMBER or METRIC >= NUMBER, "
                         "e.g. 'p99_ms <= 5'")
    if not is_known_metric(match.group(1)):
        raise ValueError(f"constraint '{echo(text)}' names an unknown metric '{echo(match.group(1))}'")
    return match.group(1), match.group(2), bound


class SweepSpec(TrialConfig):
    name: str
    description: str = ""
    grid: dict[str, Axis] = {}
    include: list[dict[str, Any]] = []
    exclude: list[dict[str, Any]] = []
    repeats: int = Field(1, gt=0)
    objectives: list[str] = Field(DEFAULT_OBJECTIVES, min_length=1)
    executor: ExecutorConfig = ExecutorConfig()
    search: SearchConfig | None = None  # None: run every grid point

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if len(name) > MAX_NAME_LENGTH:
            raise ValueError(f"is {len(name)} characters long; keep it to at most {MAX_NAME_LENGTH} "
                             "(it names the run directory results/<name>)")
        if not NAME_PATTERN.match(name):
            raise ValueError(f"'{echo(name)}' is not a valid name: use only letters, digits, _, - and ., starting "
                             f"with a letter or digit (pattern {NAME_PATTERN.pattern})")
        return name

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
        raise ValueError(f"objective '{echo(text)}' needs a direction: write '{echo(metric)}:max' or "
                         f"'{echo(metric)}:min'")
    if not is_known_metric(metric):
        from costbench.record import METRICS

        raise ValueError(f"objective '{echo(text)}' names an unknown metric '{echo(metric)}'"
                         f"{did_you_mean(metric, METRICS)}")
    return metric, direction
