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
