"""Model families by name, imported only when a trial needs one (validation stays torch-free)."""

from __future__ import annotations

import importlib
from functools import cache

from costbench.families.base import Family, FitSummary, Fitted, ModelSize, Served

# family name -> the module whose FAMILY attribute implements it
FAMILY_MODULES: dict[str, str] = {
    **dict.fromkeys(("logreg", "mlp", "dcn", "gru", "lstm", "transformer"), "costbench.families.torch_nets"),
    **dict.fromkeys(("lightgbm", "xgboost", "catboost", "random_forest"), "costbench.families.trees"),
}

__all__ = ["FAMILY_MODULES", "Family", "FitSummary", "Fitted", "ModelSize", "Served", "get_family"]


@cache
def get_family(name: str) -> Family:
    """The backend for ``model.family`` ``name``."""
    if name not in FAMILY_MODULES:
        raise ValueError(f"unknown model family '{name}'; allowed: {', '.join(FAMILY_MODULES)}")
    module = importlib.import_module(FAMILY_MODULES[name])
    return module.family(name)
