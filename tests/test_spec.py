"""Grid expansion, overrides and trial ids: what a user relies on to resume and compare sweeps."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from costbench.errors import UserError
from costbench.spec import TrialConfig, load_sweep

BASE = """\
name: t
train: {epochs: 2, lr: 0.01}
grid:
  model.size: [xs, s]
  precision: [fp32, bf16, int8]
"""

# The same sweep, keys reordered and written in another YAML style.
REORDERED = """\
grid:
  precision:
    - fp32
    - bf16
    - int8
  model.size: [xs, s]
train:
  lr: 1.0e-2
  epochs: 2
name: t
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def ids(path: Path, *overrides: str) -> list[str]:
    return [t.id for t in load_sweep(path, list(overrides)).trials]


def test_grid_is_the_cartesian_product(tmp_path: Path) -> None:
    sweep = load_sweep(write(tmp_path, BASE))
    assert len(sweep.trials) == 6
    assert {(t.axes["model.size"], t.axes["precision"]) for t in sweep.trials} == {
        (s, p) for s in ("xs", "s") for p in ("fp32", "bf16", "int8")
    }
    for trial in sweep.trials:
        assert trial.config["model"]["size"] == trial.axes["model.size"]
        assert trial.config["precision"] == trial.axes["precision"]
        assert trial.config["train"]["epochs"] == 2


def test_ids_ignore_key_order_and_yaml_layout(tmp_path: Path) -> None:
    assert sorted(ids(write(tmp_path, BASE, "a.yaml"))) == sorted(ids(write(tmp_path, REORDERED, "b.yaml")))


def test_any_value_change_changes_the_id(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    before = ids(path)
    after = ids(path, "train.lr=0.02")
    assert not set(before) & set(after)
    assert len(set(before)) == 6


def test_ids_survive_a_description_change(tmp_path: Path) -> None:
    """Only what defines a trial is hashed: renaming or re-describing a sweep keeps its results."""
    path = write(tmp_path, BASE)
    assert ids(path) == ids(path, "description=a new note")


def test_set_overrides_scalars_and_grid_axes(tmp_path: Path) -> None:
    sweep = load_sweep(write(tmp_path, BASE), ["train.epochs=5", "grid.precision=[fp32]"])
    assert len(sweep.trials) == 2
    assert all(t.config["train"]["epochs"] == 5 for t in sweep.trials)


def test_exclude_and_include(tmp_path: Path) -> None:
    text = BASE + "exclude:\n  - {precision: int8, model.size: xs}\ninclude:\n  - {model.size: m, precision: int8}\n"
    sweep = load_sweep(write(tmp_path, text))
    points = {(t.config["model"]["size"], t.config["precision"]) for t in sweep.trials}
    assert ("xs", "int8") not in points
    assert ("m", "int8") in points
    assert len(points) == 6


def test_repeats_get_distinct_seeds_and_share_a_group(tmp_path: Path) -> None:
    sweep = load_sweep(write(tmp_path, "name: t\nrepeats: 3\nseed: 10\n"))
    assert [t.config["seed"] for t in sweep.trials] == [10, 11, 12]
    assert len({t.id for t in sweep.trials}) == 3
    assert len({t.group for t in sweep.trials}) == 1
    assert [t.repeat for t in sweep.trials] == [0, 1, 2]


def test_data_paths_are_relative_to_the_sweep_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    text = "name: t\ndata: {source: csv, path: data/s.csv, label: bought}\n"
    sweep = load_sweep(write(tmp_path / "sub", text))
    assert sweep.trials[0].config["data"]["path"] == str((tmp_path / "sub" / "data" / "s.csv").resolve())


def test_trial_is_picklable_and_json_round_trips(tmp_path: Path) -> None:
    trial = load_sweep(write(tmp_path, BASE)).trials[0]
    assert pickle.loads(pickle.dumps(trial)) == trial
    assert TrialConfig.model_validate(trial.to_json()["config"]).trial_dump() == trial.config


def test_grid_over_nested_optional_key(tmp_path: Path) -> None:
    sweep = load_sweep(write(tmp_path, "name: t\ngrid: {model.hidden: [8, 16], serve.compile: [false, true]}\n"))
    assert {(t.config["model"]["hidden"], t.config["serve"]["compile"]) for t in sweep.trials} == {
        (8, False), (8, True), (16, False), (16, True)
    }


def test_user_error_carries_the_location(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"s\.yaml:3:21: grid\.precision\[1\]: unknown value .fp9."):
        load_sweep(write(tmp_path, "name: t\ngrid:\n  precision: [fp32, fp9]\n"))
