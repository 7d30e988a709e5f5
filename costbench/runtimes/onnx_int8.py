"""ONNX Runtime's own int8 for an exported graph: ``quantize.scheme`` ``ort_dynamic`` or ``ort_static``.

- ``ort_dynamic``: ``onnxruntime.quantization.quantize_dynamic``: int8 weights, activations quantized per
  call from their own range (``DynamicQuantizeLinear`` + ``MatMulInteger``).
- ``ort_static``: ``quantize_static`` in QDQ format: int8 weights (per output channel) and uint8 activations
  whose ranges are fixed beforehand by a MinMax calibration over ``CALIBRATION_ROWS`` rows of the
  *training* split (a seeded sample; validation and test rows are never read), so no range is computed at
  serving time. ONNX Runtime fuses the QuantizeLinear/DequantizeLinear pairs around each product into its
  int8 kernels (QLinearMatMul / QGemm) when it builds the session.

Both quantize the matrix products (MatMul, Gemm) only, and none in the feature block (``features``: the
numeric embedding, whose exported column copy must stay exact, and the bag mean's sum); torch's int8
schemes leave that block float too (it holds no ``nn.Linear``).
Quality is measured on the quantized graph, as served.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

SCHEMES = ("ort_dynamic", "ort_static")
QUANTIZED_OPS = ("MatMulInteger", "DynamicQuantizeLinear", "ConvInteger", "QuantizeLinear", "DequantizeLinear")
FLOAT_MATMUL_OPS = ("MatMul", "Gemm")
KEEP_FLOAT_PREFIX = "/features/"  # the exporter names nodes by module path: TabularFeatures is `features`
CALIBRATION_ROWS = 512
CALIBRATION_BATCH = 64
CALIBRATION_SEED = 0


def quantize_int8(graph: bytes, scheme: str, calibration: list[dict[str, np.ndarray]] | None = None) -> bytes:
    """``graph`` quantized by ``scheme``; ``ort_static`` needs ``calibration`` (input feeds of training rows)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    model = onnx.load_from_string(graph)
    keep_float = [n.name for n in model.graph.node if n.name.startswith(KEEP_FLOAT_PREFIX)]
    with tempfile.TemporaryDirectory() as folder, _quiet():
        out = Path(folder) / "int8.onnx"
        if scheme == "ort_dynamic":
            quantize_dynamic(model, out, weight_type=QuantType.QInt8, op_types_to_quantize=list(FLOAT_MATMUL_OPS),
                             nodes_to_exclude=keep_float)
        elif scheme == "ort_static":
            if not calibration:
                raise ValueError("ort_static needs calibration feeds")
            quantize_static(model, out, _reader(calibration), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=list(FLOAT_MATMUL_OPS), nodes_to_exclude=keep_float,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        else:
            raise ValueError(f"unknown ONNX Runtime int8 scheme '{scheme}'; allowed: {', '.join(SCHEMES)}")
        return out.read_bytes()


def calibration_rows(n_train: int, rows: int = CALIBRATION_ROWS, seed: int = CALIBRATION_SEED) -> torch.Tensor:
    """The training rows the static ranges are taken from: a seeded sample of ``rows`` (all when fewer)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n_train, generator=generator)[:rows].sort().values


def quantized_op_counts(graph: bytes) -> dict[str, Any]:
    """Which int8 operators ``graph`` holds and which float matrix products are left (and where)."""
    import onnx

    nodes = onnx.load_from_string(graph).graph.node
    ops = Counter(node.op_type for node in nodes)
    return {"quantized_ops": {k: ops[k] for k in QUANTIZED_OPS if ops[k]},
            "float_matmul_ops": {k: ops[k] for k in FLOAT_MATMUL_OPS if ops[k]},
            "float_matmul_nodes": [n.name for n in nodes if n.op_type in FLOAT_MATMUL_OPS]}


def _reader(feeds: list[dict[str, np.ndarray]]) -> Any:
    """ONNX Runtime's CalibrationDataReader over a list of input feeds."""
    from onnxruntime.quantization import CalibrationDataReader

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.left, None)

    return Feeds()


@contextmanager
def _quiet() -> Iterator[None]:
    logging.disable(logging.WARNING)  # its root-logger advice to pre-process: shapes are static here
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
