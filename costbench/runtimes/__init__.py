"""Serving runtimes for the PyTorch families: what runs the trained network when it scores rows.

``serve.runtime`` picks one: ``eager`` (PyTorch ``inference_mode``), ``compile`` (``torch.compile``) or
``onnxruntime`` (the model exported to ONNX and run by an ONNX Runtime session). Each is a small
``Runtime``: ``skip_reason`` says, before training, why a trial cannot run honestly on it, and ``serve``
turns the fitted model into the family seam's ``Served`` (``stage`` + ``predict``, sizes, ``info``). The
trial evaluates and times ``Served.predict``, so quality and latency are always those of the runtime that
serves. ``loadgen`` runs ``serve.scenario`` (MLPerf LoadGen) against whichever runtime serves.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from functools import cache
from typing import Any

from costbench.spec import TrialConfig

# runtime name -> the module whose ``runtime(name)`` builds it
RUNTIME_MODULES: dict[str, str] = {
    "eager": "costbench.runtimes.torch_runtime",
    "compile": "costbench.runtimes.torch_runtime",
    "onnxruntime": "costbench.runtimes.onnx",
}


class Runtime(ABC):
    """One way of serving a trained PyTorch network."""

    name: str

    @abstractmethod
    def skip_reason(self, cfg: TrialConfig, device: Any, family: str) -> str | None:
        """Why ``cfg`` cannot be served honestly by this runtime on ``device``, or None when it can."""

    @abstractmethod
    def serve(self, fitted: Any, data: Any, cfg: TrialConfig, device: Any) -> Any:
        """``fitted`` (a ``families.Fitted`` holding an ``nn.Module``) as a ``families.Served``."""


@cache
def get_runtime(name: str) -> Runtime:
    """The runtime for ``serve.runtime`` ``name``."""
    if name not in RUNTIME_MODULES:
        raise ValueError(f"unknown serve.runtime '{name}'; allowed: {', '.join(RUNTIME_MODULES)}")
    return importlib.import_module(RUNTIME_MODULES[name]).runtime(name)
