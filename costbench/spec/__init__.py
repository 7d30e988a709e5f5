"""The sweep file: its schema (``schema``), reading it (``source``), expanding it into trials
(``expand``) and the one call that does all three (``load``).

Everything a user can get wrong in a sweep file is caught here, before any trial starts, and told in
one line that names the file, the place (YAML line:column and the key path), what is wrong and what
is allowed. Nothing here imports torch.
"""

from costbench.spec.expand import Trial, apply_overrides, canonical_json, parse_overrides, trial_id
from costbench.spec.hardware import cuda_warnings, machine_warnings, package_warnings
from costbench.spec.load import Sweep, load_sweep
from costbench.spec.schema import (
    DEFAULT_OBJECTIVES,
    DEVICE_PATTERN,
    FAMILIES,
    MIN_CALLS_FOR_P99,
    PRECISIONS,
    SEQUENCE_FAMILIES,
    SIZES,
    TRIAL_SECTIONS,
    DataConfig,
    EvalConfig,
    ExecutorConfig,
    ModelConfig,
    PricesConfig,
    QuantizeConfig,
    ServeConfig,
    SplitConfig,
    SweepSpec,
    TrainConfig,
    TrialConfig,
    parse_objective,
)
from costbench.spec.source import read_sweep_file

__all__ = [
    "DEFAULT_OBJECTIVES", "DEVICE_PATTERN", "FAMILIES", "MIN_CALLS_FOR_P99", "PRECISIONS", "SEQUENCE_FAMILIES",
    "SIZES", "TRIAL_SECTIONS", "DataConfig", "EvalConfig", "ExecutorConfig", "ModelConfig", "PricesConfig",
    "QuantizeConfig", "ServeConfig", "SplitConfig", "Sweep", "SweepSpec", "TrainConfig", "Trial",
    "TrialConfig", "apply_overrides", "canonical_json", "cuda_warnings", "load_sweep", "machine_warnings",
    "package_warnings", "parse_objective",
    "parse_overrides", "read_sweep_file", "trial_id",
]
