"""EnergyMeter: counters read exactly (wrap-around included), and "n/a" with a reason when absent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from costbench.measure.energy import EnergyMeter


def _zone(root: Path, name: str, energy_uj: int, max_uj: int) -> Path:
    zone = root / name
    zone.mkdir()
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return zone


def test_no_rapl_gives_none_and_why(tmp_path):
    with EnergyMeter("cpu", powercap_root=tmp_path) as meter:
        sum(range(1000))
    assert meter.joules is None
    assert meter.method is None
    assert "no RAPL" in meter.why_unavailable and str(tmp_path) in meter.why_unavailable


def test_rapl_packages_summed_and_wrap_around_unwrapped(tmp_path):
    package0 = _zone(tmp_path, "intel-rapl:0", 9_000_000, 10_000_000)
    package1 = _zone(tmp_path, "intel-rapl:1", 2_000_000, 10_000_000)
    core0 = _zone(tmp_path, "intel-rapl:0:0", 1_000, 10_000_000)  # inside package 0: never added again
    meter = EnergyMeter("cpu", powercap_root=tmp_path)
    with meter:
        (package0 / "energy_uj").write_text("500000\n")  # wrapped: 1.0 J to the top + 0.5 J after
        (package1 / "energy_uj").write_text("2250000\n")  # +0.25 J
        (core0 / "energy_uj").write_text("9000000\n")
    assert meter.joules == pytest.approx(1.75)
    assert meter.why_unavailable is None and "intel-rapl:0, intel-rapl:1" in meter.method
    with meter:  # entering again adds to the total
        (package1 / "energy_uj").write_text("3250000\n")
    assert meter.joules == pytest.approx(2.75)


def test_cuda_without_pynvml_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    with EnergyMeter("cuda") as meter:
        pass
    assert meter.joules is None and "pynvml" in meter.why_unavailable
