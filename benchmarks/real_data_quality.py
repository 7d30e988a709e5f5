"""Is costbench's accuracy axis trustworthy? Its default recipe vs scikit-learn and LightGBM, same rows.

On real public purchase tables that pip packages ship, and on the synthetic shoppers: costbench's
defaults (no knob but the family; size s) train logreg, mlp and dcn, and its tree families (lightgbm,
xgboost, catboost, random_forest) run as costbench trials, through the path a sweep uses (a sweep file
expanded by ``load_sweep``, each trial by ``run_trial``; serving measured at batch 1 only, to keep it
short); on the very same prepared train/validation/test splits scikit-learn's LogisticRegression (C by
3-fold CV) and a plain LightGBM (its defaults, early stopping on validation) are fitted. Three split
seeds. Every test AUC is printed with its 95% bootstrap interval; the best neural and the best tree
trial are picked on validation AUC, never on test.

Datasets (read from the downloaded wheels, never imported, nothing fetched at run time):
- ``oj``: ISLP's OJ table (1,070 orange-juice purchases: Minute Maid vs Citrus Hill);
- ``caravan``: ISLP's Caravan table (5,822 customers, 6% bought caravan insurance);
- ``cdnow``: lifetimes' CDNOW transactions (23,570 customers): features of each customer's purchases up to
  1997-09-30, label = bought again between 1997-10-01 and 1998-06-30.

Get the wheels once (the only network step):  pip download ISLP lifetimes --no-deps -d /tmp/costbench-wheels
Run:  PYTHONPATH=. python benchmarks/real_data_quality.py [--wheels DIR] [--seeds 0 1 2] [--datasets ...]
      [--trees lightgbm xgboost catboost random_forest]   (--trees with no name: networks only)
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from costbench import baselines, metrics
from costbench.data.load import load_data
from costbench.evaluate import evaluate
from costbench.model_presets import resolve_hparams
from costbench.models import build_model
from costbench.spec import DataConfig, EvalConfig, ModelConfig, SplitConfig, TrainConfig, load_sweep
from costbench.train import seed_everything, train_model
from costbench.trial import run_trial

FAMILIES = ("logreg", "mlp", "dcn")
TREE_FAMILIES = ("lightgbm", "xgboost", "catboost", "random_forest")
SERVE = {"batch_sizes": [1], "warmup": 2, "min_calls": 662, "min_seconds": 0, "rounds": 1}
CPU = torch.device("cpu")


def _wheel(wheels: Path, pattern: str) -> zipfile.ZipFile:
    found = sorted(glob.glob(str(wheels / pattern)))
    if not found:
        sys.exit(f"no {pattern} in {wheels}; run: pip download ISLP lifetimes --no-deps -d {wheels}")
    return zipfile.ZipFile(found[-1])


def oj(wheels: Path) -> tuple[pd.DataFrame, dict]:
    frame = pd.read_csv(io.BytesIO(_wheel(wheels, "islp-*.whl").read("ISLP/data/OJ.csv")))
    return frame, {"label": "Purchase", "positive": "MM"}


def caravan(wheels: Path) -> tuple[pd.DataFrame, dict]:
    frame = pd.read_csv(io.BytesIO(_wheel(wheels, "islp-*.whl").read("ISLP/data/Caravan.csv")))
    return frame, {"label": "Purchase", "positive": "Yes"}


def cdnow(wheels: Path) -> tuple[pd.DataFrame, dict]:
    raw = _wheel(wheels, "[Ll]ifetimes-*.whl").read("lifetimes/datasets/CDNOW_master.txt").decode()
    tx = pd.read_csv(io.StringIO(raw), sep=r"\s+", names=["customer", "date", "cds", "dollars"], skiprows=1,
                     dtype={"customer": str, "date": str})
    tx["date"] = pd.to_datetime(tx["date"], format="%Y%m%d")
    cutoff = pd.Timestamp("1997-10-01")
    before, after = tx[tx.date < cutoff], tx[tx.date >= cutoff]
    first = before.sort_values("date").groupby("customer").first()
    days = before.groupby(["customer", "date"]).agg(cds=("cds", "sum"), dollars=("dollars", "sum")).reset_index()
    by = days.groupby("customer")
    frame = pd.DataFrame({
        "purchase_days": by.size(),
        "total_cds": by.cds.sum(),
        "total_dollars": by.dollars.sum(),
        "max_dollars": by.dollars.max(),
        "first_dollars": first.dollars,
        "first_cds": first.cds,
        "first_month": first.date.dt.month,
        "days_active": (by.date.max() - by.date.min()).dt.days,
        "days_since_last": (cutoff - by.date.max()).dt.days,
        "age_days": (cutoff - by.date.min()).dt.days,
    })
    frame["bought_again"] = frame.index.isin(after.customer.unique()).astype(int)
    return frame.reset_index(drop=True), {"label": "bought_again", "positive": 1}


DATASETS = {"oj": oj, "caravan": caravan, "cdnow": cdnow}


def neural(data, family: str, seed: int) -> dict:
    seed_everything(seed)
    model = build_model(resolve_hparams(ModelConfig(family=family)), data.schema)
    trained = train_model(model, data, TrainConfig(), device=CPU, autocast=contextlib.nullcontext, grad_scaler=None)
    q = evaluate(model, data, EvalConfig(), CPU)
    return {"auc": q["auc"], "lo": q["auc_ci_low"], "hi": q["auc_ci_high"], "val": trained.best_val_auc,
            "info": f"steps {trained.steps_run} bs {trained.batch_size} lr {trained.lr:.4f}"}


def tree_trials(cfg: DataConfig, seed: int, families: list[str], folder: Path) -> dict[str, dict]:
    """The tree families as costbench trials on ``cfg``'s data: a sweep file, expanded and run like a sweep's."""
    sweep = {"name": "real-data-trees", "data": cfg.model_dump(mode="json"), "seed": seed, "threads": 1,
             "serve": SERVE, "grid": {"model.family": families}}
    path = folder / f"trees-{seed}.yaml"
    path.write_text(yaml.safe_dump(sweep))
    out = {}
    for trial in load_sweep(path, cache_dir=str(folder / "cache")).trials:
        record = run_trial(trial.to_json())
        name = trial.config["model"]["family"]
        if record["status"] != "ok":
            out[name] = {"auc": float("nan"), "lo": float("nan"), "hi": float("nan"), "val": float("-inf"),
                         "info": f"{record['status']}: {record['reason']}"}
            continue
        m, details = record["metrics"], record["details"]
        out[name] = {"auc": m["auc"], "lo": m["auc_ci_low"], "hi": m["auc_ci_high"], "val": m["val_auc"],
                     "info": f"trial {record['id']}, {m['iterations_run']} rounds ({details['stopped_reason']}), "
                             f"train {m['train_seconds']:.1f}s"}
    return out


def reference(data, fit) -> dict:
    proba, info = fit(data)
    y = data.test.label.numpy()
    ci = metrics.bootstrap_intervals(y, proba, EvalConfig().top_fraction)
    return {"auc": metrics.roc_auc(y, proba), "lo": ci["auc_ci_low"], "hi": ci["auc_ci_high"],
            "val": metrics.roc_auc(data.val.label.numpy(), info.pop("val_proba")), "info": str(info)}


def run_one(cfg: DataConfig, seed: int, trees: list[str], folder: Path) -> dict[str, dict]:
    data = load_data(cfg, None)
    out = {f: neural(data, f, seed) for f in FAMILIES}
    out.update(tree_trials(cfg, seed, trees, folder) if trees else {})
    out["sklearn_lr"] = reference(data, baselines.logistic_regression)
    out["plain_lightgbm"] = reference(data, lambda d: baselines.lightgbm(d, seed))
    best = max(FAMILIES, key=lambda f: out[f]["val"])
    out["best_neural"] = {**out[best], "info": f"{best} (picked on val)"}
    if trees:
        best = max(trees, key=lambda f: out[f]["val"])
        out["best_tree"] = {**out[best], "info": f"{best} (picked on val)"}
    if data.bayes_auc is not None:
        out["bayes"] = {"auc": data.bayes_auc, "lo": float("nan"), "hi": float("nan"), "val": float("nan"),
                        "info": "known true probabilities"}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, default=Path("/tmp/costbench-wheels"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", default=[*DATASETS, "synthetic"])
    parser.add_argument("--synthetic-rows", type=int, default=30_000)
    parser.add_argument("--trees", nargs="*", choices=TREE_FAMILIES, default=list(TREE_FAMILIES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=FutureWarning)  # scikit-learn's notices about its next API
    warnings.filterwarnings("ignore", module="lightgbm")
    compared = [("best_neural", "sklearn_lr"), ("best_neural", "plain_lightgbm")]
    compared += [("best_tree", "plain_lightgbm"), ("best_neural", "best_tree")] if args.trees else []
    gaps: dict[str, list[float]] = {f"{a} - {b}": [] for a, b in compared}
    inside = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            if name == "synthetic":
                base = DataConfig(rows=args.synthetic_rows)
            else:
                frame, keys = DATASETS[name](args.wheels)
                path = Path(tmp) / f"{name}.csv"
                frame.to_csv(path, index=False)
                base = DataConfig(source="csv", path=str(path), **keys)
            for seed in args.seeds:
                started = time.perf_counter()
                cfg = base.model_copy(update={"split": SplitConfig(seed=seed)})
                out = run_one(cfg, seed, args.trees, Path(tmp))
                print(f"\n{name} split seed {seed} ({time.perf_counter() - started:.0f}s)")
                for model, r in out.items():
                    print(f"  {model:14s} test AUC {r['auc']:.4f} [{r['lo']:.4f}, {r['hi']:.4f}]  "
                          f"val {r['val']:.4f}  {r['info']}")
                for a, b in compared:
                    gaps[f"{a} - {b}"].append(out[a]["auc"] - out[b]["auc"])
                inside.append(out["best_neural"]["auc"] >= out["plain_lightgbm"]["lo"])
                print("  gaps: " + ", ".join(f"{key} {values[-1]:+.4f}" for key, values in gaps.items()), flush=True)
    print("\nmean over datasets and seeds:")
    for key, values in gaps.items():
        print(f"  {key}: {np.mean(values):+.4f} (min {np.min(values):+.4f}, n={len(values)})")
    print(f"  best neural at or above plain LightGBM's interval low end: {sum(inside)}/{len(inside)}")


if __name__ == "__main__":
    main()
