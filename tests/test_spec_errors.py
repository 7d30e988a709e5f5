"""Every mistake a user can make in a sweep file: one line on stderr, naming where and what, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from costbench.cli import app

runner = CliRunner()

GOOD = """\
name: t
data: {rows: 1000}
grid:
  model.size: [xs, s]
  precision: [fp32, int8]
"""


def run_validate(tmp_path: Path, text: str | None, *args: str, name: str = "sweep.yaml"):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    result = runner.invoke(app, ["validate", str(path), *args])
    return path, result


def one_line_error(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


SEARCH = "search: {n_trials: 4}\n"

CASES = [
    # (id, yaml text, expected fragments of the one error line)
    ("empty", "", ["sweep.yaml", "empty"]),
    ("broken-yaml", "name: t\ngrid: {precision: [fp32\n", ["sweep.yaml:", "broken YAML"]),
    ("not-a-mapping", "- a\n- b\n", ["top level must be a mapping", "not a list"]),
    ("unknown-section", "name: t\ngird: {}\n", ["unknown section 'gird'", "did you mean 'grid'", "allowed:"]),
    ("unknown-key", "name: t\nmodel: {famly: mlp}\n",
     ["sweep.yaml:2:", "model.famly", "unknown key 'famly'", "did you mean 'family'"]),
    ("wrong-type", "name: t\ntrain: {epochs: many}\n", ["train.epochs", "valid integer", "many"]),
    ("axis-not-list", "name: t\ngrid: {precision: fp32}\n", ["grid.precision", "give a list of values", "range"]),
    # ranges: {low, high, log, step}, sampled by a search only
    ("range-without-search", "name: t\ngrid: {train.lr: {low: 0.001, high: 0.1}}\n",
     ["sweep.yaml:2:", "grid.train.lr", "only a search samples", "add a search section", "list of values"]),
    ("range-grid-sampler", f"name: t\ngrid: {{train.lr: {{low: 0.001, high: 0.1}}}}\n{SEARCH[:-2]}, sampler: grid}}\n",
     ["grid.train.lr", "grid sampler runs listed values only"]),
    ("range-low-above-high", f"name: t\ngrid: {{train.lr: {{low: 0.1, high: 0.001}}}}\n{SEARCH}",
     ["grid.train.lr", "low (0.1) must be below high (0.001)"]),
    ("range-log-needs-positive", f"name: t\ngrid: {{train.weight_decay: {{low: 0, high: 0.1, log: true}}}}\n{SEARCH}",
     ["grid.train.weight_decay", "log range needs low > 0"]),
    ("range-step-zero", f"name: t\ngrid: {{train.batch_size: {{low: 256, high: 1024, step: 0}}}}\n{SEARCH}",
     ["grid.train.batch_size", "step must be > 0"]),
    ("range-step-misses-high", f"name: t\ngrid: {{train.batch_size: {{low: 256, high: 1000, step: 256}}}}\n{SEARCH}",
     ["grid.train.batch_size", "not a multiple of step (256)"]),
    ("range-log-and-step",
     f"name: t\ngrid: {{train.batch_size: {{low: 256, high: 1024, step: 256, log: true}}}}\n{SEARCH}",
     ["log and step do not combine"]),
    ("range-float-on-int", f"name: t\ngrid: {{train.batch_size: {{low: 256.0, high: 1024.5}}}}\n{SEARCH}",
     ["grid.train.batch_size", "is an integer setting", "as integers"]),
    ("range-unknown-key", f"name: t\ngrid: {{train.lr: {{low: 0.001, hgh: 0.1}}}}\n{SEARCH}",
     ["grid.train.lr", "unknown key 'hgh'", "did you mean 'high'"]),
    ("range-missing-high", f"name: t\ngrid: {{train.lr: {{low: 0.001}}}}\n{SEARCH}", ["needs low and high"]),
    ("range-not-a-number", f"name: t\ngrid: {{train.lr: {{low: small, high: 0.1}}}}\n{SEARCH}",
     ["range low must be a number", "small"]),
    ("range-out-of-bounds", f"name: t\ngrid: {{train.lr: {{low: -1, high: 0.1}}}}\n{SEARCH}",
     ["grid.train.lr.low", "greater than 0"]),
    ("empty-axis", "name: t\ngrid: {precision: []}\n", ["grid.precision", "empty"]),
    ("axis-names-nothing", "name: t\ngrid: {model.sise: [s]}\n",
     ["model.sise", "names nothing", "did you mean 'size'"]),
    ("unknown-precision", "name: t\ngrid: {precision: [fp32, fp8]}\n",
     ["sweep.yaml:2:", "grid.precision[1]", "unknown value 'fp8'", "allowed: fp32, fp16, bf16, int8"]),
    ("unknown-device", "name: t\ndevice: tpu\n", ["device", "unknown device 'tpu'", "cpu, cuda, cuda:N, auto"]),
    ("unknown-family", "name: t\nmodel: {family: tabnet}\n", ["model.family", "unknown value 'tabnet'"]),
    ("zero-batch", "name: t\ngrid: {train.batch_size: [256, 0]}\n",
     ["grid.train.batch_size[1]", "greater than 0"]),
    ("negative-batch", "name: t\ntrain: {batch_size: -8}\n", ["train.batch_size", "greater than 0"]),
    ("objective-direction", "name: t\nobjectives: [auc:up]\n", ["objectives", "auc:max", "auc:min"]),
    ("objective-metric", "name: t\nobjectives: [acu:max]\n", ["unknown metric 'acu'", "did you mean 'auc'"]),
    ("exclude-never-matches", "name: t\ngrid: {precision: [fp32, int8]}\nexclude: [{precision: fp16}]\n",
     ["exclude[0]", "can never match"]),
    ("zero-trials", "name: t\ngrid: {precision: [fp32]}\nexclude: [{precision: fp32}]\n", ["zero trials"]),
    ("sequence-model-without-sequences", "name: t\ndata: {sequence_length: 0}\nmodel: {family: gru}\n",
     ["gru", "sequence_length is 0"]),
    ("too-few-calls-for-p99", "name: t\nserve: {min_calls: 100}\n", ["serve.min_calls", "662"]),
    ("unbuildable-size", "name: t\ndata: {sequence_length: 4}\nmodel: {family: transformer, heads: 3}\n",
     ["heads 3", "divisible"]),
    ("csv-without-label", "name: t\ndata: {source: csv, path: x.csv}\n", ["data", "label"]),
    # compress
    ("distill-without-teacher", "name: t\ncompress: {distill: {alpha: 0.5}}\n",
     ["sweep.yaml:2:", "compress.distill.teacher", "is required"]),
    ("distill-alpha-above-one", "name: t\ncompress: {distill: {teacher: {family: mlp}, alpha: 1.5}}\n",
     ["compress.distill.alpha", "less than or equal to 1", "1.5"]),
    ("distill-zero-temperature", "name: t\ncompress: {distill: {teacher: {family: mlp}, temperature: 0}}\n",
     ["compress.distill.temperature", "greater than 0"]),
    ("teacher-unknown-key", "name: t\ncompress: {distill: {teacher: {family: mlp, sise: m}}}\n",
     ["compress.distill.teacher.sise", "did you mean 'size'", "allowed: family, size"]),
    ("teacher-unknown-family", "name: t\ncompress: {distill: {teacher: {family: tabnet}}}\n",
     ["compress.distill.teacher.family", "unknown value 'tabnet'"]),
    ("tree-teacher-network-key", "name: t\ncompress: {distill: {teacher: {family: lightgbm, hidden: 8}}}\n",
     ["compress.distill.teacher.hidden shapes a network", "compress.distill.teacher.params"]),
    ("sequence-teacher-without-sequences",
     "name: t\ndata: {sequence_length: 0}\ncompress: {distill: {teacher: {family: gru}}}\n",
     ["compress.distill.teacher family 'gru'", "sequence_length is 0"]),
    ("extra-rows-on-a-file", "name: t\ndata: {source: csv, path: x.csv, label: y}\n"
     "compress: {distill: {teacher: {family: mlp}, extra_rows: 1000}}\n",
     ["compress.distill.extra_rows needs synthetic data", "set it to 0"]),
    ("prune-amount-zero", "name: t\ncompress: {prune: {amount: 0}}\n", ["compress.prune.amount", "greater than 0"]),
    ("prune-amount-one", "name: t\ncompress: {prune: {amount: 1}}\n", ["compress.prune.amount", "less than 1"]),
    ("prune-mask", "name: t\ncompress: {prune: {amount: 0.5, method: mask}}\n",
     ["compress.prune.method", "unknown value 'mask'", "allowed: structured"]),
    ("prune-no-finetune", "name: t\ncompress: {prune: {amount: 0.5, finetune_epochs: 0}}\n",
     ["compress.prune.finetune_epochs", "greater than 0"]),
    ("compress-unknown-part", "name: t\ncompress: {quantise: {}}\n",
     ["compress.quantise", "unknown key", "allowed: distill, prune"]),
    ("axis-inside-an-off-section", "name: t\ngrid: {compress.distill.alpha: [0.5]}\n",
     ["grid.compress.distill.alpha", "compress.distill, which is off (null)", "make compress.distill itself the axis"]),
    ("bad-distill-on-an-axis", "name: t\ngrid: {compress.distill: [null, {teacher: {family: mlp}, alpha: -1}]}\n",
     ["grid.compress.distill[1]", "alpha", "greater than or equal to 0"]),
]


@pytest.mark.parametrize(("text", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_sweep_file_gets_one_clear_line(tmp_path: Path, text: str, fragments: list[str]) -> None:
    _, result = run_validate(tmp_path, text)
    line = one_line_error(result)
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"


def test_missing_file(tmp_path: Path) -> None:
    _, result = run_validate(tmp_path, None, name="nope.yaml")
    line = one_line_error(result)
    assert "nope.yaml" in line and "no such file" in line


def test_directory_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "a.yaml").write_text(GOOD)
    result = runner.invoke(app, ["validate", str(tmp_path / "sweeps")])
    line = one_line_error(result)
    assert "is a directory" in line and "a.yaml" in line


@pytest.mark.parametrize(
    ("override", "fragment"),
    [("train.epochs", "not KEY=VALUE"), ("grid.precision=[fp32", "not valid YAML"),
     ("name.x=1", "not a section"), ("train.epochz=3", "did you mean 'epochs'")],
)
def test_bad_set_override(tmp_path: Path, override: str, fragment: str) -> None:
    _, result = run_validate(tmp_path, GOOD, "--set", override)
    assert fragment in one_line_error(result)


def test_broken_yaml_names_line_and_column(tmp_path: Path) -> None:
    _, result = run_validate(tmp_path, "name: t\ntrain:\n  epochs: 3\n   lr: 0.1\n")
    line = one_line_error(result)
    assert "sweep.yaml:4:" in line


def test_valid_file_lists_trials(tmp_path: Path) -> None:
    _, result = run_validate(tmp_path, GOOD)
    assert result.exit_code == 0, result.stderr
    assert "4 trial(s)" in result.stdout
    assert "model.size" in result.stdout and "precision" in result.stdout


def test_every_shipped_sweep_validates() -> None:
    sweeps = sorted(Path(__file__).parents[1].joinpath("sweeps").glob("*.yaml"))
    assert sweeps, "no sweep files shipped"
    for sweep in sweeps:
        result = runner.invoke(app, ["validate", str(sweep)])
        assert result.exit_code == 0, (sweep, result.stderr)


def test_validate_checks_the_data_file(tmp_path: Path) -> None:
    """A bad CSV is caught by `validate` too, before anyone starts a sweep on it."""
    (tmp_path / "s.csv").write_text("pages,bought\n3,yes\n4,no\n5,maybe\n")
    text = "name: t\ndata: {source: csv, path: s.csv, label: bought}\n"
    _, result = run_validate(tmp_path, text)
    line = one_line_error(result)
    assert "s.csv" in line and "bought" in line


def test_a_grid_value_valid_beside_another_axis_is_accepted_and_a_bad_combination_is_named(tmp_path):
    """model.params is a tree family's: valid beside model.family lightgbm though the base model is mlp. Where
    the grid also pairs it with mlp, the error names that point and says to exclude it."""
    trees = ("name: t\ndata: {rows: 1000}\ngrid:\n  model.family: [lightgbm, xgboost]\n"
             "  model.params: [{}, {subsample: 0.75}]\n")
    _, result = run_validate(tmp_path, trees)
    assert result.exit_code == 0 and "valid, 4 trial(s)" in result.stdout, result.output
    mixed = trees.replace("[lightgbm, xgboost]", "[lightgbm, mlp]")
    line = one_line_error(run_validate(tmp_path, mixed)[1])
    assert 'the point model.family=mlp, model.params={"subsample": 0.75} is invalid' in line
    assert "applies to the tree families" in line and "add it to exclude" in line
    excluded = mixed + "exclude:\n  - {model.family: mlp, model.params: {subsample: 0.75}}\n"
    _, result = run_validate(tmp_path, excluded)
    assert result.exit_code == 0 and "valid, 3 trial(s)" in result.stdout, result.output
