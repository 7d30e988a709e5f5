"""Is costbench's accuracy axis trustworthy? Its default recipe vs scikit-learn and LightGBM, same rows.

On real public purchase tables that pip packages ship, and on the synthetic shoppers: costbench's
defaults (no knob but the family; size s) train logreg, mlp and dcn; on the very same prepared
train/validation/test splits scikit-learn's LogisticRegression (C by 3-fold CV) and LightGBM (early
stopping on validation) are fitted. Three split seeds. Every test AUC is printed with its 95% bootstrap
interval; the best neural trial is picked on validation AUC, never on test.

Datasets (read from the downloaded wheels, never imported, nothing fetched at run time):
- ``oj``: ISLP's OJ table (1,070 orange-juice purchases: Minute Maid vs Citrus Hill);
- ``caravan``: ISLP's Caravan table (5,822 customers, 6% bought caravan insurance);
- ``cdnow``: lifetimes' CDNOW transactions (23,570 customers): features of each customer's purchases up to
  1997-09-30, label = bought again between 1997-10-01 and 1998-06-30.

Get the wheels once (the only network step):  pip download ISLP lifetimes --no-deps -d /tmp/costbench-wheels
Run:  PYTHONPATH=. python benchmarks/real_data_quality.py [--wheels DIR] [--seeds 0 1 2] [--datasets ...]
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

from costbench import baselines, metrics
from costbench.data.load import load_data
from costbench.evaluate import evaluate
from costbench.model_presets import resolve_hparams
from costbench.models import build_model
from costbench.spec import DataConfig, EvalConfig, ModelConfig, SplitConfig, TrainConfig
from costbench.train import seed_everything, train_model

FAMILIES = ("logreg", "mlp", "dcn")
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


def reference(data, fit) -> dict:
    proba, info = fit(data)
    y = data.test.label.numpy()
    ci = metrics.bootstrap_intervals(y, proba, EvalConfig().top_fraction)
    return {"auc": metrics.roc_auc(y, proba), "lo": ci["auc_ci_low"], "hi": ci["auc_ci_high"],
            "val": metrics.roc_auc(data.val.label.numpy(), info.pop("val_proba")), "info": str(info)}


def run_one(cfg: DataConfig, seed: int) -> dict[str, dict]:
    data = load_data(cfg, None)
    out = {f: neural(data, f, seed) for f in FAMILIES}
    out["sklearn_lr"] = reference(data, baselines.logistic_regression)
    out["lightgbm"] = reference(data, lambda d: baselines.lightgbm(d, seed))
    best = max(FAMILIES, key=lambda f: out[f]["val"])
    out["best_neural"] = {**out[best], "info": f"{best} (picked on val)"}
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
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=FutureWarning)  # scikit-learn's notices about its next API
    warnings.filterwarnings("ignore", module="lightgbm")
    gaps: dict[str, list[float]] = {"best_neural - sklearn_lr": [], "best_neural - lightgbm": []}
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
                out = run_one(cfg, seed)
                print(f"\n{name} split seed {seed} ({time.perf_counter() - started:.0f}s)")
                for model, r in out.items():
                    print(f"  {model:12s} test AUC {r['auc']:.4f} [{r['lo']:.4f}, {r['hi']:.4f}]  "
                          f"val {r['val']:.4f}  {r['info']}")
                b = out["best_neural"]
                gaps["best_neural - sklearn_lr"].append(b["auc"] - out["sklearn_lr"]["auc"])
                gaps["best_neural - lightgbm"].append(b["auc"] - out["lightgbm"]["auc"])
                inside.append(b["auc"] >= out["lightgbm"]["lo"])
                print(f"  gaps: best_neural - sklearn_lr {gaps['best_neural - sklearn_lr'][-1]:+.4f}, "
                      f"best_neural - lightgbm {gaps['best_neural - lightgbm'][-1]:+.4f}", flush=True)
    print("\nmean over datasets and seeds:")
    for key, values in gaps.items():
        print(f"  {key}: {np.mean(values):+.4f} (min {np.min(values):+.4f}, n={len(values)})")
    print(f"  best neural at or above LightGBM's interval low end: {sum(inside)}/{len(inside)}")


if __name__ == "__main__":
    main()
