"""The machine's matrix-multiply peak: the roofline a served model's achieved GFLOP/s is set against.

What: the best GFLOP/s (int8: GOP/s) of one ``GEMM_SIZE``-cubed matrix product on the CPU threads the trial
uses (``torch.get_num_threads()``), per kernel present, and the fastest as the peak of that precision:

- fp32: ``torch.mm`` (torch's BLAS, MKL on x86), ``numpy @`` (numpy's BLAS, OpenBLAS in the wheels; only
  when ``threadpoolctl`` can hold it to the same threads) and ONNX Runtime's ``MatMul`` (MLAS);
- int8: ``torch._int_mm`` and ONNX Runtime's ``MatMulInteger`` (uint8 x int8 -> int32, the kernel behind
  its dynamic and static int8).

Why that size: 256^3 (three 256 KB matrices) stays in a core's L2, so it shows the kernels' compute peak, not
memory bandwidth or what other processes leave of the shared L3 (at 512^3 torch's MKL ran 20-90 GFLOP/s from
call to call on a loaded 2-core VM where 256^3 held 95-100); all kernels, ``REPEATS`` calls each, take about
0.15 s. Measured under the machine-wide latency
lock, so no trial's timing shares the cores with it, and cached in a file per host, CPU, threads and library
versions, so a sweep measures it once, not per trial; the environment record carries it.
"""

from __future__ import annotations

import json
import os
import platform
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

GEMM_SIZE = 256
REPEATS = 30
CACHE_DIR = Path(tempfile.gettempdir())
CACHE_SCHEMA = 1
Kernel = Callable[[], Any]


def gemm_peaks(threads: int, size: int = GEMM_SIZE, repeats: int = REPEATS) -> dict[str, Any]:
    """Measure each kernel now: ``{"fp32": {"gflops", "kernel", "by_kernel"}, "int8": {...}, ...}``."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _measure(threads, size, repeats)
    finally:
        torch.set_num_threads(previous)


def _measure(threads: int, size: int, repeats: int) -> dict[str, Any]:
    with _numpy_blas_threads(threads) as numpy_limited:
        flops = 2 * size**3
        peaks: dict[str, Any] = {"size": size, "threads": threads, "repeats": repeats,
                                 "what": f"best of {repeats} {size}x{size}x{size} products per kernel"}
        for precision, kernels in (("fp32", _fp32_kernels(size, threads, numpy_limited)),
                                   ("int8", _int8_kernels(size, threads))):
            by_kernel = {name: flops / seconds / 1e9 for name, seconds in _best_seconds(kernels, repeats).items()}
            best = max(by_kernel, key=by_kernel.__getitem__) if by_kernel else None
            peaks[precision] = {"gflops": by_kernel[best] if best else None, "kernel": best, "by_kernel": by_kernel}
        return peaks


def cached_gemm_peaks(threads: int | None = None, on_wait: Callable[[], None] | None = None,
                      on_acquired: Callable[[], None] | None = None) -> dict[str, Any]:
    """``gemm_peaks`` for these threads, measured once per host, CPU, threads and versions (a file cache,
    and in memory for the process). Measuring takes the latency lock: ``on_wait``/``on_acquired`` are
    ``latency_lock``'s, so a trial waiting for it can stop its timeout clock."""
    import torch

    threads = threads or torch.get_num_threads()
    if threads not in _MEASURED:
        _MEASURED[threads] = _cached(threads, on_wait, on_acquired)
    return _MEASURED[threads]


def achieved_gflops(flops_per_row: int | None, batch: int, p50_ms: float | None) -> float | None:
    """The model's useful GFLOP/s at one batch size: FLOPs per row x rows / median call time."""
    if not flops_per_row or not p50_ms or p50_ms <= 0:
        return None
    return flops_per_row * batch / (p50_ms / 1000) / 1e9


def flops_efficiency(gflops: float | None, peak_gflops: float | None) -> float | None:
    """Achieved over peak; n/a when either is unknown."""
    if gflops is None or not peak_gflops:
        return None
    return gflops / peak_gflops


_MEASURED: dict[int, dict[str, Any]] = {}  # threads -> peaks, this process's copy of the file cache


def _cached(threads: int, on_wait: Callable[[], None] | None,
            on_acquired: Callable[[], None] | None) -> dict[str, Any]:
    from costbench.measure.latency import latency_lock
    from costbench.store import write_text_atomic

    path = CACHE_DIR / f"costbench-gemm-peak-{_cache_key(threads)}.json"
    found = _read(path)
    if found is not None:
        return found
    with latency_lock(on_wait=on_wait, on_acquired=on_acquired):
        found = _read(path)  # another trial may have measured it while this one waited
        if found is None:
            load = os.getloadavg()[0]  # other work on the cores lowers a peak: a reader can see it here
            found = {"schema": CACHE_SCHEMA, **gemm_peaks(threads), "loadavg_1m": load,
                     "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            write_text_atomic(path, json.dumps(found, indent=2) + "\n")
    return found


def _read(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and found.get("schema") == CACHE_SCHEMA else None


def _cache_key(threads: int) -> str:
    import hashlib

    from costbench.measure.environment import cpu_info, library_versions

    versions = library_versions()
    text = json.dumps([platform.node(), cpu_info()["model"], threads, GEMM_SIZE, REPEATS, versions.get("torch"),
                       versions.get("numpy"), versions.get("onnxruntime"), os.environ.get("OMP_NUM_THREADS")])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _best_seconds(kernels: dict[str, Kernel], repeats: int) -> dict[str, float]:
    """Each kernel's fastest call, the kernels taking turns so a passing disturbance hits them alike."""
    best = dict.fromkeys(kernels, float("inf"))
    for fn in kernels.values():
        fn()
    for _ in range(repeats):
        for name, fn in kernels.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _fp32_kernels(n: int, threads: int, with_numpy: bool) -> dict[str, Kernel]:
    import torch

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    kernels: dict[str, Kernel] = {f"torch.mm ({_torch_blas()})": lambda: torch.mm(ta, tb)}
    if with_numpy:
        kernels[f"numpy @ ({_numpy_blas()})"] = lambda: a @ b
    ort = _ort_product("MatMul", a, b, threads)
    if ort is not None:
        kernels["onnxruntime MatMul"] = ort
    return kernels


def _int8_kernels(n: int, threads: int) -> dict[str, Kernel]:
    import torch

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (n, n), dtype=np.uint8)
    b = rng.integers(-128, 128, (n, n), dtype=np.int8)
    kernels: dict[str, Kernel] = {}
    ta, tb = torch.from_numpy(b.copy()), torch.from_numpy(b.T.copy())
    try:
        torch._int_mm(ta, tb)
        kernels["torch._int_mm"] = lambda: torch._int_mm(ta, tb)
    except (RuntimeError, AttributeError):  # no int8 matmul kernel in this torch build
        pass
    ort = _ort_product("MatMulInteger", a, b, threads)
    if ort is not None:
        kernels["onnxruntime MatMulInteger"] = ort
    return kernels


def _ort_product(op: str, a: np.ndarray, b: np.ndarray, threads: int) -> Kernel | None:
    """One ONNX Runtime session running ``op`` on ``a`` and ``b``; None without onnxruntime."""
    from costbench.runtimes.ort_session import make_session, missing_packages

    if missing_packages():
        return None
    import torch
    from onnx import TensorProto, helper

    types = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.uint8): TensorProto.UINT8,
             np.dtype(np.int8): TensorProto.INT8}
    out = TensorProto.FLOAT if op == "MatMul" else TensorProto.INT32
    graph = helper.make_graph([helper.make_node(op, ["a", "b"], ["c"])], "gemm",
                              [helper.make_tensor_value_info("a", types[a.dtype], list(a.shape)),
                               helper.make_tensor_value_info("b", types[b.dtype], list(b.shape))],
                              [helper.make_tensor_value_info("c", out, [a.shape[0], b.shape[1]])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = make_session(model.SerializeToString(), torch.device("cpu"), threads)  # as costbench serves
    feed = {"a": a, "b": b}
    return lambda: session.run(["c"], feed)


@contextmanager
def _numpy_blas_threads(threads: int) -> Iterator[bool]:
    """Hold numpy's BLAS to ``threads`` meanwhile; yields False (numpy is not timed) without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield False
        return
    with threadpool_limits(limits=threads, user_api="blas"):
        yield True


def _torch_blas() -> str:
    import torch

    found = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return found.group(1) if found else "BLAS"


def _numpy_blas() -> str:
    try:
        return str(np.show_config(mode="dicts")["Build Dependencies"]["blas"].get("name", "BLAS"))
    except Exception:  # an old numpy without mode="dicts"
        return "BLAS"
