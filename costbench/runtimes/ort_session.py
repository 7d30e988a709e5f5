"""ONNX Runtime sessions, built one way for every graph costbench serves (exported networks, converted trees).

Threads come from the resource plan: ``intra_op_num_threads`` is ``torch.get_num_threads()`` (what the
trial was given), ``inter_op_num_threads`` 1 (the graphs are sequential), all graph optimisations on. The
CPU execution provider, or CUDA's (with CPU for what it lacks) on a CUDA device.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

INSTALL = 'pip install "costbench[serve]"'


def missing_packages(*extra: str) -> list[str]:
    """Which of onnxruntime, onnx and ``extra`` are not installed."""
    return [name for name in ("onnxruntime", "onnx", *extra) if importlib.util.find_spec(name) is None]


def make_session(graph: bytes, device: torch.device, threads: int | None = None) -> Any:
    """An ONNX Runtime session for ``graph``; ``threads`` intra-op (default: the resource plan's, as torch
    has them)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads() if threads is None else threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: the provider-assignment notes are not the user's business
    if device.type == "cuda":
        providers: list[Any] = [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    return ort.InferenceSession(graph, options, providers=providers)


def session_info(session: Any) -> dict[str, Any]:
    """What the record says about a session: the ONNX Runtime version, providers, inputs and threads."""
    import onnxruntime as ort

    options = session.get_session_options()
    return {"onnxruntime": ort.__version__, "providers": session.get_providers(),
            "inputs": [i.name for i in session.get_inputs()], "intra_op_threads": options.intra_op_num_threads,
            "inter_op_threads": options.inter_op_num_threads}
