"""What the tree families accept, known without importing any tree library (or torch).

``costbench validate`` checks ``model.params`` against these lists in milliseconds; the lists are the
libraries' own constructor arguments (a test compares them with the installed libraries). The names
costbench sets itself (threads, device, seed, the early-stopping metric) are refused with where they
come from instead.
"""

from __future__ import annotations

from typing import Any

from costbench.errors import did_you_mean, echo

TREE_FAMILIES: tuple[str, ...] = ("lightgbm", "xgboost", "catboost", "random_forest")
PACKAGES: dict[str, str] = {  # family -> the module it imports (find_spec looks for it)
    "lightgbm": "lightgbm", "xgboost": "xgboost", "catboost": "catboost", "random_forest": "sklearn",
}
INSTALL_HINT = 'pip install "costbench[gbdt]"'

# family -> size -> the library's own hyperparameters. Boosting sizes cap the rounds (early stopping on
# val usually stops long before) and set the tree shape; the forest sets its tree count and depth.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "lightgbm": {
        "xs": {"n_estimators": 200, "num_leaves": 7, "learning_rate": 0.1},
        "s": {"n_estimators": 1000, "num_leaves": 31, "learning_rate": 0.05},
        "m": {"n_estimators": 2000, "num_leaves": 63, "learning_rate": 0.05},
        "l": {"n_estimators": 4000, "num_leaves": 255, "learning_rate": 0.03},
        "xl": {"n_estimators": 8000, "num_leaves": 1023, "learning_rate": 0.02},
    },
    "xgboost": {
        "xs": {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.1},
        "s": {"n_estimators": 1000, "max_depth": 6, "learning_rate": 0.05},
        "m": {"n_estimators": 2000, "max_depth": 8, "learning_rate": 0.05},
        "l": {"n_estimators": 4000, "max_depth": 10, "learning_rate": 0.03},
        "xl": {"n_estimators": 8000, "max_depth": 12, "learning_rate": 0.02},
    },
    "catboost": {
        "xs": {"iterations": 200, "depth": 4, "learning_rate": 0.15},
        "s": {"iterations": 1000, "depth": 6, "learning_rate": 0.08},
        "m": {"iterations": 2000, "depth": 8, "learning_rate": 0.05},
        "l": {"iterations": 4000, "depth": 10, "learning_rate": 0.03},
        "xl": {"iterations": 8000, "depth": 12, "learning_rate": 0.02},
    },
    "random_forest": {
        "xs": {"n_estimators": 20, "max_depth": 8, "min_samples_leaf": 5},
        "s": {"n_estimators": 100, "max_depth": 12, "min_samples_leaf": 5},
        "m": {"n_estimators": 200, "max_depth": 16, "min_samples_leaf": 5},
        "l": {"n_estimators": 400, "max_depth": 20, "min_samples_leaf": 3},
        "xl": {"n_estimators": 800, "max_depth": None, "min_samples_leaf": 1},
    },
}

# what costbench sets from the trial, and where the user sets it instead
RESERVED: dict[str, str] = {
    **dict.fromkeys(("n_jobs", "nthread", "thread_count", "num_threads"), "threads (the trial's resource plan)"),
    **dict.fromkeys(("random_state", "random_seed", "seed"), "seed"),
    **dict.fromkeys(("device", "task_type", "devices", "device_type"), "device"),
    **dict.fromkeys(("od_wait", "od_type", "use_best_model"), "model.params.early_stopping_rounds"),
    **dict.fromkeys(("eval_metric", "objective", "loss_function", "callbacks", "callback", "cat_features",
                     "enable_categorical", "feature_types", "verbose", "verbosity", "silent", "logging_level",
                     "allow_writing_files", "train_dir", "warm_start"), "costbench itself"),
}

_LIGHTGBM = (
    "early_stopping_rounds",  # costbench's own (default 50): rounds without a better val AUC
    # LGBMClassifier's arguments
    "boosting_type", "class_weight", "colsample_bytree", "importance_type", "learning_rate", "max_depth",
    "min_child_samples", "min_child_weight", "min_split_gain", "n_estimators", "num_leaves", "reg_alpha",
    "reg_lambda", "subsample", "subsample_for_bin", "subsample_freq",
    # native parameters it passes through (https://lightgbm.readthedocs.io/en/latest/Parameters.html)
    "bagging_fraction", "bagging_freq", "cat_l2", "cat_smooth", "extra_trees", "feature_fraction",
    "is_unbalance", "lambda_l1", "lambda_l2", "linear_tree", "max_bin", "max_cat_threshold",
    "max_cat_to_onehot", "max_delta_step", "min_data_in_leaf", "min_data_per_group", "min_sum_hessian_in_leaf",
    "path_smooth", "scale_pos_weight",
)
_XGBOOST = (  # XGBClassifier().get_params()
    "base_score", "booster", "colsample_bylevel", "colsample_bynode", "colsample_bytree", "early_stopping_rounds",
    "feature_weights",
    "gamma", "grow_policy", "importance_type", "interaction_constraints", "learning_rate", "max_bin",
    "max_cat_threshold", "max_cat_to_onehot", "max_delta_step", "max_depth", "max_leaves", "min_child_weight",
    "missing", "monotone_constraints", "multi_strategy", "n_estimators", "num_parallel_tree", "reg_alpha",
    "reg_lambda", "sampling_method", "scale_pos_weight", "subsample", "tree_method", "validate_parameters",
)
_CATBOOST = (  # CatBoostClassifier's arguments, less the reserved ones and the file/text/embedding ones
    "allow_const_label", "approx_on_full_history", "auto_class_weights", "bagging_temperature",
    "best_model_min_trees", "boost_from_average", "boosting_type", "bootstrap_type", "border_count",
    "class_weights", "colsample_bylevel", "combinations_ctr", "counter_calc_method", "ctr_description",
    "ctr_history_unit", "ctr_leaf_count_limit", "ctr_target_border_count", "depth", "diffusion_temperature",
    "eta", "feature_border_type", "feature_weights", "final_ctr_computation_mode", "first_feature_use_penalties",
    "fixed_binary_splits", "fold_len_multiplier", "fold_permutation_block", "gpu_cat_features_storage",
    "gpu_ram_part", "grow_policy", "has_time", "iterations", "l2_leaf_reg", "langevin",
    "leaf_estimation_backtracking", "leaf_estimation_iterations", "leaf_estimation_method", "learning_rate",
    "max_bin", "max_ctr_complexity", "max_depth", "max_leaves", "min_child_samples", "min_data_in_leaf",
    "model_shrink_mode", "model_shrink_rate", "model_size_reg", "monotone_constraints", "mvs_reg",
    "n_estimators", "nan_mode", "num_boost_round", "num_leaves", "num_trees", "od_pval", "one_hot_max_size",
    "penalties_coefficient", "per_feature_ctr", "per_float_feature_quantization", "posterior_sampling",
    "random_score_type", "random_strength", "reg_lambda", "rsm", "sampling_frequency", "sampling_unit",
    "scale_pos_weight", "score_function", "simple_ctr", "store_all_simple_ctr", "subsample", "target_border",
    "used_ram_limit",
)
_RANDOM_FOREST = (  # RandomForestClassifier's arguments
    "bootstrap", "ccp_alpha", "class_weight", "criterion", "max_depth", "max_features", "max_leaf_nodes",
    "max_samples", "min_impurity_decrease", "min_samples_leaf", "min_samples_split", "min_weight_fraction_leaf",
    "monotonic_cst", "n_estimators", "oob_score",
)
ACCEPTED: dict[str, tuple[str, ...]] = {
    "lightgbm": _LIGHTGBM, "xgboost": _XGBOOST, "catboost": _CATBOOST, "random_forest": _RANDOM_FOREST,
}


def check_params(family: str, params: dict[str, Any]) -> None:
    """ValueError (one line) for a ``model.params`` name the family's library does not take here."""
    if params and family not in TREE_FAMILIES:
        raise ValueError(f"model.params sets a library's own hyperparameters and applies to the tree families "
                         f"({', '.join(TREE_FAMILIES)}); for '{family}' use model.hidden/layers/emb_dim/heads/dropout")
    accepted = ACCEPTED.get(family, ())
    for name in params:
        if name in RESERVED:
            raise ValueError(f"model.params.{echo(name)}: costbench sets this from {RESERVED[name]}; remove it")
        if name not in accepted:
            raise ValueError(f"model.params.{echo(name)} is not a {family} hyperparameter"
                             f"{did_you_mean(name, accepted)}; {family} takes: {', '.join(sorted(accepted))}")


def resolve_tree_hparams(family: str, size: str, params: dict[str, Any]) -> dict[str, Any]:
    """The size preset with ``model.params`` on top: what the library is given (besides threads/seed)."""
    check_params(family, params)
    return {**PRESETS[family][size], **params}
