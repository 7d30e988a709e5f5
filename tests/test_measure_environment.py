"""Thread settings are recorded as they are, environment variables included."""

from __future__ import annotations

import torch

from costbench.measure.environment import thread_settings


def test_thread_settings_report_torch_threads_and_env(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    settings = thread_settings()
    assert settings["torch_threads"] == torch.get_num_threads()
    assert settings["env"]["OMP_NUM_THREADS"] == "3"
    assert settings["env"]["MKL_NUM_THREADS"] is None


def test_the_environment_names_every_library_the_report_shows_so_serving_figures_say_their_runtime():
    """The report's machine line shows onnxruntime's and the tree libraries' versions: the environment
    must collect them (installed ones with their version, absent ones as None)."""
    from importlib import metadata

    from costbench.measure.environment import library_versions
    from costbench.report.machine import VERSIONS

    versions = library_versions()
    assert set(VERSIONS) <= set(versions)
    for name in ("onnxruntime", "lightgbm", "scikit-learn"):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        assert versions[name] == installed
