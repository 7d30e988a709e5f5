"""Executors run trials and report events; ``make_executor`` picks one by name."""

from __future__ import annotations

from typing import Any

from costbench.errors import UserError
from costbench.executors.base import TRIAL_FUNCTION, Executor, TrialEvent

KINDS = ("local", "ray")
_LOCAL_ONLY_DEFAULTS = {"address": None, "runtime_env": None, "retries": 0}

__all__ = ["KINDS", "TRIAL_FUNCTION", "Executor", "TrialEvent", "make_executor"]


def make_executor(
    kind: str,
    *,
    workers: int | None = None,
    threads: int | None = None,
    trial_timeout: float | None = None,
    retries: int | None = None,
    address: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    trial_fn: str = TRIAL_FUNCTION,
) -> Executor:
    """The executor named ``kind``, built with the keywords every executor constructor accepts.

    - ``workers``: trials at once (None: the executor's default; local: one per core on CPU, one per GPU).
    - ``threads``: torch intra-op threads per trial when the trial config sets none (None: default).
    - ``trial_timeout``: seconds before a trial is ended and recorded ``failed`` ("timeout after N s").
    - ``retries``: ray only: times a trial whose process died is run again (0 or None: never).
    - ``address``: ray only: the cluster to join (None: start a local one).
    - ``runtime_env``: ray only: Ray runtime environment for the trial workers.
    - ``trial_fn``: "module:function" called as ``fn(trial_json, on_phase=callback) -> record``.

    The ray executor (``costbench.executors.ray.RayExecutor``) takes exactly these keywords; the local
    one takes workers, threads, trial_timeout and trial_fn and refuses ray-only settings rather than
    ignore them.
    """
    if kind == "local":
        given = {"address": address, "runtime_env": runtime_env, "retries": retries or 0}
        misplaced = [k for k, v in given.items() if v != _LOCAL_ONLY_DEFAULTS[k]]
        if misplaced:
            names = ", ".join(f"--{k.replace('_', '-')}" if k != "runtime_env" else "executor.runtime_env"
                              for k in misplaced)
            raise UserError(f"{names} only applies to the ray executor; use --executor ray or drop it")
        from costbench.executors.local import LocalExecutor

        return LocalExecutor(workers=workers, threads=threads, trial_timeout=trial_timeout, trial_fn=trial_fn)
    if kind == "ray":
        try:
            from costbench.executors.ray import RayExecutor
        except ModuleNotFoundError as exc:
            if exc.name != "ray":
                raise
            raise UserError("the ray executor needs Ray: pip install 'costbench[ray]'") from None
        return RayExecutor(workers=workers, threads=threads, trial_timeout=trial_timeout, retries=retries,
                           address=address, runtime_env=runtime_env, trial_fn=trial_fn)
    raise UserError(f"unknown executor '{kind}'; allowed: {', '.join(KINDS)}")
