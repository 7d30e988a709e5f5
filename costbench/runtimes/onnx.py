"""The ``onnxruntime`` runtime: the trained network exported to ONNX and served by an ONNX Runtime session.

- Export: ``torch.onnx.export`` of the fp32 model with the TorchScript exporter (``dynamo=False``: the dynamo
  exporter needs ``onnxscript``), inputs named ``numeric``, ``categorical``, ``items``, ``item_categories``
  and the batch axis dynamic, so one graph serves every batch size. Inputs a model does not read are
  dropped from the graph by the exporter; ``stage`` feeds only those the graph declares.
- Session: ``ort_session.make_session``, shared with the tree families (CPU or CUDA provider, threads from
  the resource plan).
- int8: ``quantize.scheme: ort_dynamic`` or ``ort_static`` is ONNX Runtime's own quantization of the
  exported graph (``onnx_int8``: dynamic, or static QDQ calibrated on training rows); torch's and torchao's
  schemes are never mixed in. bf16 and fp16 are skipped.

Export time (and quantization) is ``prepare_seconds`` (counted with training), session creation (graph
optimisation) is ``compile_seconds``, kept out of latency. An export that fails is a skip with the reason;
a session that cannot be built fails the trial with ONNX Runtime's message.
"""

from __future__ import annotations

import io
import time
import warnings
from typing import Any

import numpy as np
import torch

from costbench.data import PreparedData, Split
from costbench.errors import TrialSkipped, first_line
from costbench.families.base import Fitted, ModelSize, Served
from costbench.precision import get_policy
from costbench.runtimes import Runtime, onnx_int8
from costbench.runtimes.ort_session import INSTALL, make_session, missing_packages, session_info
from costbench.spec import TrialConfig

INPUT_NAMES = ("numeric", "categorical", "items", "item_categories")
OUTPUT_NAME = "logit"
OPSET = 17


class OnnxRuntime(Runtime):
    name = "onnxruntime"

    def skip_reason(self, cfg: TrialConfig, device: torch.device, family: str) -> str | None:
        missing = missing_packages()
        if missing:
            return f"serve.runtime onnxruntime needs {' and '.join(missing)}: {INSTALL}"
        if cfg.precision in ("bf16", "fp16"):
            return (f"serve.runtime onnxruntime serves fp32 and int8 (quantize.scheme ort_dynamic or ort_static) "
                    f"only: a "
                    f"{cfg.precision} graph is not built here (ONNX Runtime's CPU provider lacks "
                    f"{cfg.precision} kernels for these layers)")
        if cfg.precision == "int8" and cfg.quantize.scheme not in onnx_int8.SCHEMES:
            return (f"int8 {cfg.quantize.scheme} is a torch/torchao scheme; under serve.runtime onnxruntime "
                    "write quantize.scheme: ort_dynamic or ort_static")
        if device.type == "cuda":
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                return (f"serve.runtime onnxruntime on {device}: this onnxruntime build has no CUDA execution "
                        f"provider (has {', '.join(ort.get_available_providers())}); pip install onnxruntime-gpu")
            if cfg.precision == "int8":
                return (f"int8 {cfg.quantize.scheme} on CUDA: ONNX Runtime's int8 operators (MatMulInteger, "
                        "DynamicQuantizeLinear, QLinearMatMul) run on the CPU provider only, so the figure would "
                        "not be the GPU's")
        # training is fp32 for fp32 and int8 alike: the fp32 policy's probe checks that it runs
        return get_policy("fp32").skip_reason(device, family, cfg.quantize)

    def serve(self, fitted: Fitted, data: PreparedData, cfg: TrialConfig, device: torch.device) -> Served:
        model = fitted.model.eval().float()
        example = tuple(t.contiguous().to(device) for t in data.test.inputs(slice(0, 2)))
        start = time.perf_counter()
        graph = export_onnx(model, example)
        export_seconds = time.perf_counter() - start
        info: dict[str, Any] = {"runtime": self.name, "precision": cfg.precision, "scheme": None, "dtype": "float32",
                                "export_seconds": export_seconds, "quantize_seconds": 0.0, "opset": OPSET,
                                "compiled": False, "notes": []}
        if cfg.precision == "int8":
            scheme, start = cfg.quantize.scheme, time.perf_counter()
            calibration = _calibration_feeds(graph, data.train) if scheme == "ort_static" else None
            graph = onnx_int8.quantize_int8(graph, scheme, calibration)
            info.update(scheme=scheme, dtype="int8", quantize_seconds=time.perf_counter() - start,
                        **onnx_int8.quantized_op_counts(graph))
            if calibration:
                info["calibration_rows"] = sum(len(next(iter(f.values()))) for f in calibration)
                info["calibration_split"] = "train"
            if not info["quantized_ops"]:
                raise TrialSkipped(f"int8 {scheme}: ONNX Runtime quantized no operator of this graph")
        start = time.perf_counter()
        session = make_session(graph, device)
        session_seconds = time.perf_counter() - start
        info.update(session_info(session), session_seconds=session_seconds)
        names = info["inputs"]
        if device.type == "cuda":
            info["notes"].append("inputs are staged on the GPU (OrtValue); logits are copied back to the host")
        predict, stage = _cuda_predict(session, names, device) if device.type == "cuda" else _cpu_predict(session,
                                                                                                         names)
        size = ModelSize(params=fitted.params, param_bytes=initializer_bytes(graph), model_bytes=len(graph))
        return Served(predict=predict, stage=stage, size=size, info=info,
                      prepare_seconds=export_seconds + info["quantize_seconds"], compile_seconds=session_seconds)


def export_onnx(model: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> bytes:
    """The serialized ONNX graph of ``model`` (batch axis dynamic); an export failure is a ``TrialSkipped``."""
    buffer = io.BytesIO()
    axes = {name: {0: "batch"} for name in (*INPUT_NAMES, OUTPUT_NAME)}
    try:
        # grad enabled: under no_grad, nn.TransformerEncoderLayer takes its fused inference kernel, which has
        # no ONNX form; with grad on it runs (and is traced as) its plain ops, with the same results
        with warnings.catch_warnings(), torch.inference_mode(False), torch.enable_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
            torch.onnx.export(model, example, buffer, input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    except Exception as exc:
        raise TrialSkipped(f"serve.runtime onnxruntime: torch.onnx.export failed for {type(model).__name__}: "
                           f"{type(exc).__name__}: {first_line(exc)}") from exc
    return buffer.getvalue()


def initializer_bytes(graph: bytes) -> int:
    """Bytes of the graph's weights (initializers) as stored: int8 weights count 1 byte each."""
    import onnx
    from onnx import numpy_helper

    return sum(numpy_helper.to_array(t).nbytes for t in onnx.load_from_string(graph).graph.initializer)


def _calibration_feeds(graph: bytes, train: Split) -> list[dict[str, np.ndarray]]:
    """Input feeds of ``CALIBRATION_BATCH`` rows each over ``onnx_int8.calibration_rows`` of the training split,
    holding only the inputs the graph declares."""
    import onnx

    declared = {i.name for i in onnx.load_from_string(graph).graph.input}
    tensors = dict(zip(INPUT_NAMES, train.inputs(), strict=True))
    rows = onnx_int8.calibration_rows(len(train))
    return [{name: np.ascontiguousarray(t[chunk].numpy()) for name, t in tensors.items() if name in declared}
            for chunk in rows.split(onnx_int8.CALIBRATION_BATCH)]


def _cpu_predict(session: Any, names: list[str]) -> tuple[Any, Any]:
    keep = [INPUT_NAMES.index(n) for n in names]

    def stage(split: Split, rows: Any) -> tuple[np.ndarray, ...]:
        tensors = split.inputs()
        return tuple(np.ascontiguousarray(tensors[i][rows].numpy()) for i in keep)

    def predict(*arrays: np.ndarray) -> np.ndarray:
        return session.run([OUTPUT_NAME], dict(zip(names, arrays, strict=True)))[0]

    return predict, stage


def _cuda_predict(session: Any, names: list[str], device: torch.device) -> tuple[Any, Any]:
    import onnxruntime as ort

    keep, index = [INPUT_NAMES.index(n) for n in names], device.index or 0

    def stage(split: Split, rows: Any) -> tuple[Any, ...]:
        tensors = split.inputs()
        return tuple(ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(tensors[i][rows].numpy()), "cuda", index)
                     for i in keep)

    def predict(*values: Any) -> np.ndarray:
        binding = session.io_binding()
        for name, value in zip(names, values, strict=True):
            binding.bind_ortvalue_input(name, value)
        binding.bind_output(OUTPUT_NAME, "cpu")
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    return predict, stage


def runtime(name: str) -> OnnxRuntime:
    return OnnxRuntime()
