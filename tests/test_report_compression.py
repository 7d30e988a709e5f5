"""The report's compression table: each compressed trial beside its same-shape scratch model and teacher."""

from __future__ import annotations

from pathlib import Path

from costbench.report.build import build_report
from costbench.report.compression import comparisons
from costbench.report.files import markdown
from costbench.report.table import compression_table
from tests.rundirs import metrics, record, write

DISTILL = {"teacher": {"family": "catboost", "size": "s", "seed": 0, "train": {"epochs": 3, "batch_size": 512}},
           "alpha": 0.5, "temperature": 1.0, "extra_rows": 1000}
PRUNE = {"amount": 0.5, "method": "structured", "finetune_epochs": 1}
XS = {"family": "mlp", "hidden": 16, "layers": 1, "emb_dim": 4}
M = {"family": "mlp", "hidden": 256, "layers": 3, "emb_dim": 16}
HALF = {"family": "mlp", "hidden": 180, "layers": 3, "emb_dim": 11}


def with_details(rec: dict, hparams: dict, **details: object) -> dict:
    rec["details"] = {**rec["details"], "hparams": hparams, **details}
    return rec


def run_dir(tmp_path: Path) -> Path:
    records = [
        with_details(record("scratchxs", {"model.size": "xs"}, metrics=metrics(0.870, 1.0, cost=1e-5)), XS),
        with_details(record("distilled", {"model.size": "xs", "compress": DISTILL},
                            metrics=metrics(0.878, 1.0, cost=4e-5, teacher_auc=0.882, teacher_cost_usd=3e-5,
                                            own_train_cost_usd=1e-5),
                            compress={"distill": DISTILL, "prune": None}), XS, teacher={"id": "t1"}),
        with_details(record("scratchm", {"model.size": "m"}, metrics=metrics(0.875, 2.0)), M),
        with_details(record("pruned", {"model.size": "m", "compress": PRUNE},
                            metrics=metrics(0.873, 1.5, params=120_000, params_before_prune=241_000,
                                            p50_ms_before_prune=1.0),
                            compress={"distill": None, "prune": PRUNE}), HALF,
                     training={"prune": {"hparams_before": M}}),
        with_details(record("scratchhalf", {"model.size": "m", "model.hidden": 180},
                            metrics=metrics(0.871, 1.4, params=120_000)), HALF),
    ]
    for rec in records:
        rec["config"]["model"] = {"family": "mlp", "size": rec["axes"]["model.size"]}
    teacher = record("teacher", {"model.size": "s"}, metrics=metrics(0.882, 0.1))
    teacher["config"]["model"] = {"family": "catboost", "size": "s"}
    records.append(with_details(teacher, {"family": "catboost", "size": "s"}))
    return write(tmp_path / "run", records, axes=["model.size", "compress"])


def test_compressed_trials_are_matched_to_their_scratch_twins_and_teacher(tmp_path: Path) -> None:
    report = build_report(run_dir(tmp_path))
    found = {c.row.id: c for c in comparisons(report.rows)}
    assert set(found) == {"distilled", "pruned"}
    distilled, pruned = found["distilled"], found["pruned"]
    assert distilled.scratch.id == "scratchxs" and distilled.teacher.id == "teacher"
    assert abs(distilled.auc_vs_scratch - 0.008) < 1e-12
    assert abs(distilled.gap_closed - 0.008 / 0.012) < 1e-12
    assert pruned.scratch.id == "scratchhalf" and pruned.unpruned.id == "scratchm"
    assert pruned.gap_closed is None and pruned.teacher is None  # no teacher
    assert "## Compressed trials beside their references" in markdown(report)
    table = compression_table(report)
    cells = {row[0]: dict(zip(table.headers, row, strict=True)) for row in table.cells}
    expected = {"compression": "distil catboost s a=0.5 T=1 +1,000 rows", "model": "mlp hidden 16 emb 4",
                "AUC": "0.8780", "scratch": "scratchxs", "scratch AUC": "0.8700", "AUC vs scratch": "+0.0080",
                "teacher": "teacher", "teacher AUC": "0.8820", "AUC vs teacher": "-0.0040", "gap closed": "67%"}
    assert {k: cells["distilled"][k] for k in expected} == expected
    assert cells["distilled"]["teacher cost ($)"] == "0.000030"
    pruned_cells = cells["pruned"]
    assert (pruned_cells["scratch"], pruned_cells["scratch AUC"], pruned_cells["AUC vs scratch"],
            pruned_cells["before prune AUC"]) == ("scratchhalf", "0.8710", "+0.0020", "0.8750")
    assert (pruned_cells["params"], pruned_cells["params before prune"], pruned_cells["p50 before prune (ms)"]) == \
        ("120,000", "241,000", "1.000")
    assert any("includes all of its teacher's cost" in line
               and "1 teacher file(s) (one per teacher and extra_rows), once each, for 1 distilled" in line
               for line in report.summary)


def test_a_run_without_compression_has_no_compression_table(tmp_path: Path) -> None:
    run = write(tmp_path / "run", [record("a", {"model.size": "xs"}, metrics=metrics(0.87, 1.0))])
    report = build_report(run)
    assert "Compressed trials" not in markdown(report)
    assert not any("teacher" in line for line in report.summary)
