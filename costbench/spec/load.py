"""``load_sweep``: read, validate and expand a sweep file in one call.

Torch-free by design (``costbench validate`` and the report import it): anything that needs to look
at the machine, such as whether a CUDA GPU is present, lives in ``costbench.spec.hardware``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from costbench.spec.expand import Trial, apply_overrides, check_space, excluded, expand, point_trials
from costbench.spec.schema import GridRange, SweepSpec
from costbench.spec.source import Locator, read_sweep_file, validation_error


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file and the trials it expands to."""

    spec: SweepSpec
    path: Path
    raw: dict[str, Any]
    trials: list[Trial]  # a search over ranges: its corner points (every range at low and at high)
    locator: Locator | None = field(default=None, compare=False, repr=False)
    space: dict[str, list[Any] | GridRange] = field(default_factory=dict, compare=False, repr=False)
    cache_dir: str | None = field(default=None, compare=False, repr=False)
    data_ids: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def axes(self) -> list[str]:
        return list(self.spec.grid)

    @property
    def has_ranges(self) -> bool:
        return any(isinstance(axis, GridRange) for axis in self.space.values())

    def trials_at(self, point: dict[str, Any]) -> list[Trial]:
        """The trials of one point of the space (a search's proposal); none when an exclude rule matches."""
        if excluded(self.spec, point):
            return []
        return point_trials(self.spec, point, self.path, self.locator or Locator(None), self.cache_dir,
                            self.data_ids)

    def where(self, key_path: str) -> str:
        """'sweeps/x.yaml:4:1: data' for a key path, so later checks can point into the file too."""
        return self.locator.where(self.path, key_path) if self.locator else f"{self.path}: {key_path}"


def load_sweep(path: str | Path, overrides: list[str] | None = None, cache_dir: str | None = None) -> Sweep:
    """Read, validate and expand a sweep file. Raises UserError with one clear line on any mistake."""
    path = Path(path)
    raw, locator = read_sweep_file(path)
    raw = apply_overrides(raw, overrides or [])
    try:
        spec = SweepSpec.model_validate(_with_absolute_paths(raw, path.parent))
    except ValidationError as exc:
        raise validation_error(exc, path, locator, SweepSpec) from None
    space, data_ids = check_space(spec, path, locator), {}
    trials = expand(spec, path, locator, cache_dir, space, data_ids)
    return Sweep(spec=spec, path=path, raw=raw, trials=trials, locator=locator, space=space, cache_dir=cache_dir,
                 data_ids=data_ids)


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
