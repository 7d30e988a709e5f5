"""Loading a sweep never imports torch; the 'no CUDA GPU' warning is asked for separately."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from costbench.spec import cuda_warnings, load_sweep

ROOT = Path(__file__).parents[1]


def test_loading_a_cuda_sweep_does_not_import_torch() -> None:
    code = ("import sys; from costbench.spec import load_sweep; "
            "s = load_sweep('sweeps/gpu-scale.yaml'); "
            "print(len(s.trials), sorted(m for m in ('torch', 'pandas', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    count, modules = out.stdout.strip().split(" ", 1)
    assert int(count) > 0 and modules == "[]"


@pytest.mark.parametrize(("gpus", "expected"), [(0, 1), (1, 0)])
def test_cuda_warning_only_without_a_gpu(monkeypatch: pytest.MonkeyPatch, gpus: int, expected: int) -> None:
    import costbench.measure.environment as environment

    monkeypatch.setattr(environment, "cuda_device_count", lambda: gpus)
    trials = load_sweep(ROOT / "sweeps/smoke.yaml", ["grid.device=[cpu,cuda]"]).trials
    warnings = cuda_warnings(trials)
    assert len(warnings) == expected
    if expected:
        assert warnings[0].startswith("6 trial(s) ask for cuda but this machine has no CUDA GPU")


def test_cpu_only_sweep_has_no_cuda_warning() -> None:
    assert cuda_warnings(load_sweep(ROOT / "sweeps/smoke.yaml").trials) == []
