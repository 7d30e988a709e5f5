"""A tree model served by ONNX Runtime (``serve.runtime: onnxruntime`` for the tree families).

The fitted model is converted by its library's maintained converter (onnxmltools for LightGBM and XGBoost,
skl2onnx for scikit-learn's forest, CatBoost's own ``save_model(format="onnx")``; each family's
``onnx_graph``) into an ``ai.onnx.ml`` TreeEnsemble graph, kept as the converter writes it except that a
ZipMap on the probabilities (CatBoost's export has one) is cut off so the output is a plain tensor. The
session is ``ort_session.make_session``, the networks' own. ``predict`` returns the logit of the positive
class probability, the score the native path returns.

Honesty: a converter that refuses the model (CatBoost's exporter and categorical features, say) is a skip
with its reason, and so is a graph whose probabilities on the validation rows differ from the native
predict's by more than ``AGREEMENT`` (a converter that silently drops a feature of the model). Conversion
time is ``prepare_seconds`` (counted with training), session creation ``compile_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from costbench.data import PreparedData, Split
from costbench.errors import TrialSkipped, first_line
from costbench.families.base import Fitted, ModelSize, Served
from costbench.families.trees_features import feature_layout, feature_matrix
from costbench.runtimes.ort_session import INSTALL, make_session, missing_packages, session_info

INPUT_NAME = "features"
CONVERTERS = {"lightgbm": "onnxmltools", "xgboost": "onnxmltools", "random_forest": "skl2onnx",
              "catboost": "catboost"}
AGREEMENT = 1e-3  # largest |p_onnx - p_native| allowed on a validation row (float32 sums of float32 leaves)
CLIP = 1e-6  # probabilities of exactly 0 or 1 have no finite logit (the forest's native serving clips alike)


def skip_reason(family: str, device: torch.device) -> str | None:
    """Why ``family`` cannot be served by ONNX Runtime here, or None when it can."""
    missing = missing_packages(CONVERTERS[family])
    if missing:
        return f"serve.runtime onnxruntime for {family} needs {' and '.join(missing)}: {INSTALL}"
    if device.type == "cuda":
        return (f"serve.runtime onnxruntime for {family} on {device}: ONNX Runtime's tree-ensemble operators "
                "(ai.onnx.ml TreeEnsembleClassifier) have CPU kernels only, so the figure would not be the GPU's; "
                "serve it with serve.runtime: eager")
    return None


def serve_onnx(name: str, convert: Callable[[Any, int], bytes], native: Callable[[Split], np.ndarray],
               fitted: Fitted, data: PreparedData, device: torch.device) -> Served:
    """``fitted`` converted by ``convert(model, n_features)`` and served by an ONNX Runtime session;
    ``native(split)`` (the library's own margins) is the reference the graph must agree with."""
    n_features = len(feature_layout(data.schema).names)
    start = time.perf_counter()
    try:
        graph = without_zipmap(convert(fitted.model, n_features))
    except Exception as exc:
        raise TrialSkipped(f"serve.runtime onnxruntime: the ONNX converter of {name} ({CONVERTERS[name]}) "
                           f"refused this model: {type(exc).__name__}: {first_line(exc)}") from exc
    convert_seconds = time.perf_counter() - start
    start = time.perf_counter()
    session = make_session(graph, device)
    session_seconds = time.perf_counter() - start
    output = _probability_output(session)

    def stage(split: Split, rows: Any) -> tuple[np.ndarray]:
        return (feature_matrix(split, rows),)

    def predict(features: np.ndarray) -> np.ndarray:
        p = session.run([output], {INPUT_NAME: features})[0][:, 1].astype(np.float64)
        p = np.clip(p, CLIP, 1 - CLIP)
        return (np.log(p) - np.log1p(-p)).astype(np.float32)

    disagreement = _max_probability_difference(predict(*stage(data.val, None)), native(data.val))
    if disagreement > AGREEMENT:
        raise TrialSkipped(f"serve.runtime onnxruntime: the {CONVERTERS[name]} graph of this {name} model "
                           f"disagrees with {name}'s own predict (largest probability difference "
                           f"{disagreement:.2g} on the validation rows, allowed {AGREEMENT:g}); not served")
    info = {"runtime": "onnxruntime", "dtype": "float32", "scheme": None, "compiled": False,
            "converter": _converter_version(name), "model_format": "ONNX (ai.onnx.ml TreeEnsemble)",
            "input": "numpy float32", "convert_seconds": convert_seconds, "session_seconds": session_seconds,
            "max_probability_difference_vs_native": disagreement, **session_info(session)}
    size = ModelSize(params=fitted.params, param_bytes=None, model_bytes=len(graph))
    return Served(predict=predict, stage=stage, size=size, info=info, prepare_seconds=convert_seconds,
                  compile_seconds=session_seconds)


def without_zipmap(graph: bytes) -> bytes:
    """``graph`` with a ZipMap on its outputs cut off: its input tensor becomes the graph output."""
    import onnx

    model = onnx.load_from_string(graph)
    zipmaps = [n for n in model.graph.node if n.op_type == "ZipMap"]
    if not zipmaps:
        return graph
    for node in zipmaps:
        kept = [o for o in model.graph.output if o.name != node.output[0]]
        del model.graph.output[:]
        model.graph.output.extend([*kept, onnx.helper.make_tensor_value_info(node.input[0], onnx.TensorProto.FLOAT,
                                                                             [None, 2])])
        model.graph.node.remove(node)
    return model.SerializeToString()


def _probability_output(session: Any) -> str:
    """The graph output holding [n, 2] class probabilities (the other is the predicted label)."""
    found = [o.name for o in session.get_outputs() if o.type == "tensor(float)"]
    if len(found) != 1:
        raise TrialSkipped(f"serve.runtime onnxruntime: the converted graph has float outputs {found}, "
                           "expected one tensor of class probabilities")
    return found[0]


def _max_probability_difference(onnx_logits: np.ndarray, native_logits: np.ndarray) -> float:
    def sigmoid(z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))

    return float(np.max(np.abs(sigmoid(onnx_logits) - sigmoid(native_logits)), initial=0.0))


def _converter_version(name: str) -> str:
    from importlib.metadata import version

    return f"{CONVERTERS[name]} {version(CONVERTERS[name])}"
