"""One policy per precision: how a model is trained (autocast, gradient scaler) and how the trained model is
prepared for serving (cast, quantize, compile), so a record says exactly what ran.

- ``fp32``: train and serve in float32.
- ``bf16``/``fp16``: train under autocast of that dtype (fp16 adds a GradScaler, on CPU too: fp16 gradients
  underflow the same way there); serve the model cast to that dtype. Float inputs are cast, id inputs stay
  int64, logits come back as float32 for the metrics.
- ``int8``: train in float32, then quantize for serving by ``quantize.scheme``: ``dynamic`` (torchao int8
  dynamic activations + int8 weights), ``weight_only`` (torchao int8 weights) or ``legacy_dynamic``
  (``torch.ao.quantization.quantize_dynamic``: CPU only, also covers nn.LSTM/nn.GRU). Linear layers get the
  scheme; with torchao, embedding tables get int8 weight-only per row too (in recommendation models they
  are most of the bytes; the legacy embedding kernel rejects non-contiguous ids, so it is not used).
  What was quantized and what stayed float is listed in ``Served.info``; a model in which nothing could
  be quantized is refused, never reported as int8.

Whether a precision can run is found out by running it: ``skip_reason`` builds a tiny model of the family
and runs the policy's own training step and serving call on it (once per precision, family, device and
scheme; cached). A missing kernel becomes a skip reason naming the op or module, never a silent fallback.

Compilation (``serve.compile``, and torchao int8 by default through ``quantize.compile``, because torchao
int8 served eagerly is several times slower than fp32 on CPU): the batch dimension is marked dynamic, so one
graph serves every batch size >= 2, and batch 1 (which torch always specialises) is compiled as a second
graph; both are compiled here, inside ``prepare_for_serving``, and their total time is
``info['compile_seconds']``, kept out of latency. If compilation fails and the user asked for it
(``serve.compile: true``), ``CompileFailed`` is raised, so the trial fails with the reason. If only the
int8 default asked for it, the model is served eagerly and ``info`` says so (``compiled: false``,
``compile_error``): a serving mode changes, not the precision.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import is_traceable_wrapper_subclass

from costbench.errors import TrialSkipped, first_line
from costbench.spec import QuantizeConfig

TORCHAO_SCHEMES = ("dynamic", "weight_only")
PROBE_ROWS = 4


class CompileFailed(RuntimeError):
    """``serve.compile`` was asked for and torch.compile failed; the message says why."""


@dataclass
class Served:
    """The model as served: ``fn`` maps the four input tensors (already on the device) to float32 logits."""

    fn: Callable[..., Tensor]
    module: nn.Module
    info: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ policies


class PrecisionPolicy:
    """fp32, bf16 and fp16: autocast of ``dtype`` for training, the model cast to ``dtype`` for serving."""

    def __init__(self, name: str, dtype: torch.dtype) -> None:
        self.name, self.dtype = name, dtype

    def skip_reason(self, device: torch.device, family: str, quantize: QuantizeConfig) -> str | None:
        """Why this precision cannot run ``family`` on ``device`` here, or None when it can. The device
        itself is known to exist: ``trial.resolve_device`` is the one device gate."""
        return _probe(self, device, family, quantize)

    def autocast(self, device: torch.device) -> AbstractContextManager[Any]:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.dtype)

    def grad_scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(device.type) if self.dtype == torch.float16 else None

    def prepare_for_serving(self, model: nn.Module, example_inputs: tuple[Tensor, ...], device: torch.device,
                            quantize: QuantizeConfig, compile: bool) -> Served:
        """Cast ``model`` (in place) for serving and compile it when asked."""
        model.eval().to(self.dtype)
        info = {"precision": self.name, "scheme": None, "dtype": _dtype_name(self.dtype), "quantize_seconds": 0.0,
                "notes": []}
        return _finish(model, self._input_dtype(), example_inputs, info, compile, compile_required=compile)

    def _input_dtype(self) -> torch.dtype | None:
        return None if self.dtype == torch.float32 else self.dtype


class Int8Policy(PrecisionPolicy):
    """Train in fp32, quantize to int8 for serving by ``quantize.scheme``."""

    def __init__(self) -> None:
        super().__init__("int8", torch.float32)

    def skip_reason(self, device: torch.device, family: str, quantize: QuantizeConfig) -> str | None:
        if device.type == "cuda" and quantize.scheme == "legacy_dynamic":
            return ("int8 legacy_dynamic (torch.ao.quantization.quantize_dynamic) has no CUDA kernels; "
                    "use quantize.scheme dynamic or weight_only on CUDA")
        return super().skip_reason(device, family, quantize)

    def prepare_for_serving(self, model: nn.Module, example_inputs: tuple[Tensor, ...], device: torch.device,
                            quantize: QuantizeConfig, compile: bool) -> Served:
        """Quantize ``model`` in place; torchao schemes are compiled unless ``quantize.compile`` is false."""
        model.eval()
        if quantize.scheme in TORCHAO_SCHEMES:
            _torchao()  # imported before the clock starts: its import is not quantization time
        start = time.perf_counter()
        quantized = _quantize(model, quantize.scheme)
        seconds = time.perf_counter() - start
        if not quantized:
            raise TrialSkipped(f"int8 {quantize.scheme}: no nn.Linear/nn.Embedding layers to quantize")
        info = {
            "precision": "int8", "scheme": quantize.scheme, "dtype": "int8", "quantize_seconds": seconds,
            "quantized_modules": dict(quantized), "linear_layers_quantized": quantized.get("Linear", 0),
            "float_weight_modules": dict(_float_weight_modules(model)), "notes": _int8_notes(quantize.scheme),
        }
        wants = compile or (quantize.compile and quantize.scheme in TORCHAO_SCHEMES)
        return _finish(model, None, example_inputs, info, wants, compile_required=compile)


POLICIES: dict[str, PrecisionPolicy] = {
    "fp32": PrecisionPolicy("fp32", torch.float32),
    "bf16": PrecisionPolicy("bf16", torch.bfloat16),
    "fp16": PrecisionPolicy("fp16", torch.float16),
    "int8": Int8Policy(),
}


def get_policy(name: str) -> PrecisionPolicy:
    if name not in POLICIES:
        raise ValueError(f"unknown precision '{name}'; allowed: {', '.join(POLICIES)}")
    return POLICIES[name]


# ------------------------------------------------------------------------------------------ serving


def _finish(model: nn.Module, input_dtype: torch.dtype | None, example: tuple[Tensor, ...], info: dict[str, Any],
            compile: bool, compile_required: bool) -> Served:
    """Wrap ``model`` as a serving function; compile it (batch dim dynamic) when asked."""
    info.update(compiled=False, compile_seconds=0.0)
    forward = _forward(model, input_dtype)
    if compile:
        try:
            forward, info["compile_seconds"] = _compile(forward, example)
            info["compiled"] = True
        except Exception as exc:
            torch._dynamo.reset()
            info["compile_error"] = f"{type(exc).__name__}: {first_line(exc)}"
            if compile_required:
                raise CompileFailed(f"serve.compile: torch.compile failed for {info['precision']} "
                                    f"({info['compile_error']})") from exc
            info["notes"].append("torch.compile failed, so this model is served eagerly")
    return Served(fn=_inference(forward), module=model, info=info)


def _forward(module: nn.Module, input_dtype: torch.dtype | None) -> Callable[..., Tensor]:
    """The model's call as served: float inputs cast to its dtype (ids stay int64), float32 logits out. The
    cast belongs inside what gets compiled, or the cast input would lose its dynamic batch dimension."""
    def forward(numeric: Tensor, categorical: Tensor, items: Tensor, item_categories: Tensor) -> Tensor:
        if input_dtype is not None:
            numeric = numeric.to(input_dtype)
        return module(numeric, categorical, items, item_categories).float()

    return forward


def _inference(forward: Callable[..., Tensor]) -> Callable[..., Tensor]:
    def fn(*inputs: Tensor) -> Tensor:
        with torch.inference_mode():
            return forward(*inputs)

    return fn


def _compile(forward: Callable[..., Tensor], example: tuple[Tensor, ...]) -> tuple[Callable[..., Tensor], float]:
    """torch.compile, warmed until every batch size is served by a compiled graph; returns it and the seconds,
    inductor's first import included (a trial process pays it).

    The batch dim is marked dynamic where the model lets it be (a graph break, e.g. at an LSTM, can pin it;
    then torch's automatic dynamic shapes recompile it as dynamic at the second size), and torch always
    specialises batch 1: warming at sizes m, m + 1 and 1 compiles all of it here, none while serving.
    Dynamo's caches are cleared first: every served model shares the code of ``forward``, and a cache
    holding earlier models could reach torch's recompile limit and run this one eagerly without a word.
    A trial serves one model per process, so nothing else is lost.
    """
    torch._dynamo.reset()
    m = max(2, len(example[0]))
    start = time.perf_counter()
    with warnings.catch_warnings():  # torch-internal notices a user can do nothing about
        warnings.filterwarnings("ignore", message=".*_stable_hash_for_caching.*")
        warnings.filterwarnings("ignore", message=".*torch.jit.script_method. is deprecated.*")
        compiled = torch.compile(forward)
        fn = _inference(compiled)
        for rows in (m, m + 1, 1):
            batch = tuple(t[torch.arange(rows, device=t.device) % len(t)] for t in example)
            if rows > 1:
                for t in batch:
                    torch._dynamo.maybe_mark_dynamic(t, 0)
            fn(*batch)
    return compiled, time.perf_counter() - start


# ------------------------------------------------------------------------------------------ int8


def _quantize(model: nn.Module, scheme: str) -> Counter[str]:
    """Quantize ``model`` in place; returns the quantized module types and their counts."""
    if scheme == "legacy_dynamic":
        return _quantize_legacy(model)
    ao = _torchao()
    from torchao.quantization import IntxWeightOnlyConfig
    from torchao.quantization.granularity import PerAxis

    linear = {"dynamic": ao.Int8DynamicActivationInt8WeightConfig, "weight_only": ao.Int8WeightOnlyConfig}[scheme]
    ao.quantize_(model, linear())
    ao.quantize_(model, IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0)),
                 filter_fn=lambda mod, _fqn: type(mod) is nn.Embedding)
    return Counter(type(m).__name__ for m in model.modules()
                   if isinstance(getattr(m, "weight", None), Tensor) and is_traceable_wrapper_subclass(m.weight))


def _quantize_legacy(model: nn.Module) -> Counter[str]:
    with warnings.catch_warnings():  # importing it warns of torch.jit deprecations, once, about itself
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.ao import quantization as tq

    # torch's own default, per-tensor int8 weights (per-channel float64 scales and int64 zero points cost 16
    # bytes per output row, more than int8 saves on a small layer); not nn.Embedding: its quantized kernel
    # rejects the column views (non-contiguous ids) the models pass it
    spec: dict[Any, Any] = dict.fromkeys((nn.Linear, nn.LSTM, nn.GRU), tq.default_dynamic_qconfig)
    # nn.TransformerEncoderLayer's inference fast path reads linear.weight as a tensor, which a quantized
    # dynamic Linear does not have: its Linear layers stay float (and are listed as such in the info)
    spec.update({f"{name}.{child}": None for name, m in model.named_modules()
                 if isinstance(m, nn.TransformerEncoderLayer) for child in ("linear1", "linear2")})
    with warnings.catch_warnings():  # its deprecation notice is recorded in the notes, not printed per trial
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*deprecated.*")
        tq.quantize_dynamic(model, spec, inplace=True)
    return Counter(type(m).__name__ for m in model.modules()
                   if type(m).__module__.startswith("torch.ao.nn.quantized")
                   and not type(m).__name__.endswith("PackedParams"))


def _int8_notes(scheme: str) -> list[str]:
    if scheme == "legacy_dynamic":
        return ["torch.ao.quantization.quantize_dynamic is deprecated in torch and due to be removed"]
    return list(_IMPORT_NOTES)


def _float_weight_modules(model: nn.Module) -> Counter[str]:
    """Module types still holding float weight matrices (>= 2-D) after quantization."""
    return Counter(type(m).__name__ for m in model.modules()
                   if any(p.dim() >= 2 and p.is_floating_point() and not is_traceable_wrapper_subclass(p)
                          for p in m.parameters(recurse=False)))


_IMPORT_NOTES: list[str] = []


class _DropKnownNoise(logging.Filter):
    """Drops a log line holding all of ``fragments`` (harmless import chatter), keeping a note of kernel
    libraries that did not load; passes every other line."""

    def __init__(self, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if all(f in message for f in self.fragments):
            if "Failed to load" in message:
                _IMPORT_NOTES.append("torchao: optional kernel library not loaded: " + message.split(":")[0]
                                     .rsplit("/", 1)[-1])
            return False
        return True


@cache
def _torchao() -> Any:
    """Import torchao with its harmless import noise kept out of the user's terminal.

    torchao tries to load its CUDA-only kernel libraries (mxfp8, cutlass) on every machine and logs each
    failure, and registers an Enum in a way torch now logs as deprecated. Neither concerns int8 here;
    only those exact messages are dropped (and noted in int8 records), anything else still shows.
    """
    logging.getLogger("torchao").addFilter(_DropKnownNoise(("Failed to load", "_C_")))
    logging.getLogger("torch.utils._pytree").addFilter(_DropKnownNoise(("register_constant() on Enum",)))
    import torchao.quantization

    return torchao.quantization


# ------------------------------------------------------------------------------------------ probes


@cache
def _probe(policy: PrecisionPolicy, device: torch.device, family: str, quantize: QuantizeConfig) -> str | None:
    """Run the policy's training step and serving call on a tiny ``family`` model; None or why it failed.
    The random state is restored afterwards, so probing never changes what a seeded trial computes."""
    cuda = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        return _run_probe(policy, device, family, quantize)


def _run_probe(policy: PrecisionPolicy, device: torch.device, family: str, quantize: QuantizeConfig) -> str | None:
    model, inputs = _tiny_model(family, device)
    label = f"{policy.name}" + (f" {quantize.scheme}" if policy.name == "int8" else "")
    where = "training step"
    try:
        with _innermost_module() as stack:
            with policy.autocast(device):
                logits = model(*inputs)
            where = "training backward"
            loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), torch.ones_like(logits.float()))
            scaler = policy.grad_scaler(device)
            (scaler.scale(loss) if scaler else loss).backward()
            where = "serving"
            eager = quantize.model_copy(update={"compile": False})  # the probe checks kernels, not compile
            served = policy.prepare_for_serving(model, inputs, device, eager, compile=False)
            served.fn(*inputs)
    except TrialSkipped as exc:
        return str(exc)
    except (NotImplementedError, RuntimeError) as exc:
        module = f" in {stack[-1]}" if stack and where != "training backward" else ""
        return (f"{label} on {device.type} cannot run {family} with torch {torch.__version__}: "
                f"{where}{module} failed: {first_line(exc)}")
    return None


@contextlib.contextmanager
def _innermost_module() -> Iterator[list[str]]:
    """Tracks which module types are running, so a failing kernel can be named by its layer. The hooks are
    global ones: hooks on the modules themselves would turn off torch's inference fast paths."""
    stack: list[str] = []

    def enter(module: nn.Module, _args: Any) -> None:
        stack.append(type(module).__name__)

    def leave(_module: nn.Module, _args: Any, _output: Any) -> None:
        stack.pop()

    handles = [nn.modules.module.register_module_forward_pre_hook(enter),
               nn.modules.module.register_module_forward_hook(leave)]
    try:
        yield stack
    finally:
        for handle in handles:
            handle.remove()


def _tiny_model(family: str, device: torch.device) -> tuple[nn.Module, tuple[Tensor, ...]]:
    """The smallest model of ``family`` with the same layer types as the real ones, and a batch for it."""
    from costbench.data import Schema
    from costbench.model_presets import resolve_hparams
    from costbench.models import build_model
    from costbench.spec import ModelConfig

    length = 3
    schema = Schema(numeric_names=["a", "b"], categorical_names=["c", "d"], cardinalities=[3, 3],
                    sequence_length=length, n_items=6, n_item_categories=4)
    gen = torch.Generator().manual_seed(0)
    inputs = (torch.randn(PROBE_ROWS, 2, generator=gen), torch.randint(0, 3, (PROBE_ROWS, 2), generator=gen),
              torch.randint(1, 6, (PROBE_ROWS, length), generator=gen),
              torch.randint(1, 4, (PROBE_ROWS, length), generator=gen))
    model = build_model(resolve_hparams(ModelConfig(family=family, size="xs")), schema).to(device)
    return model, tuple(t.to(device) for t in inputs)


# ------------------------------------------------------------------------------------------ sizes


def serialized_bytes(served: Served) -> int:
    """Bytes of ``torch.save(state_dict)`` of the served module: the model as shipped."""
    buffer = io.BytesIO()
    torch.save(served.module.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def param_bytes(served: Served) -> int:
    """Storage bytes of the served module's parameters and buffers (int8 weights count 1 byte each), packed
    quantized weights and tensor-subclass internals included, shared storage counted once."""
    seen: set[int] = set()
    state = served.module.state_dict(keep_vars=True)
    buffers = [b for _, b in served.module.named_buffers()]
    return sum(_storage_bytes(v, seen) for v in [*state.values(), *buffers])


def _storage_bytes(value: Any, seen: set[int]) -> int:
    if isinstance(value, Tensor):
        if is_traceable_wrapper_subclass(value):
            names, _ = value.__tensor_flatten__()
            return sum(_storage_bytes(getattr(value, name), seen) for name in names)
        if value.is_quantized:
            key, size = id(value), value.nbytes
            if value.qscheme() in _PER_CHANNEL:
                size += value.q_per_channel_scales().nbytes + value.q_per_channel_zero_points().nbytes
        else:
            storage = value.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
        if key in seen:
            return 0
        seen.add(key)
        return size
    if isinstance(value, (tuple, list)):
        return sum(_storage_bytes(v, seen) for v in value)
    if isinstance(value, torch.ScriptObject):
        return _storage_bytes(value.__getstate__(), seen)
    return 0


_PER_CHANNEL = (torch.per_channel_affine, torch.per_channel_affine_float_qparams, torch.per_channel_symmetric)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
