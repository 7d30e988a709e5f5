"""Hostile or careless sweep files: bounded work, and one line with file:line:col and exit 2 (issue 16)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from costbench.errors import UserError
from costbench.spec import load_sweep
from costbench.spec.bounded_yaml import MAX_NODES
from tests.test_spec_errors import one_line_error, run_validate

ROOT = Path(__file__).parents[1]


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The 'billion laughs' file of issue 16: about 550 bytes that expand to width**levels strings."""
    lines = ["name: bomb", f"a0: &a0 [{', '.join(['x'] * width)}]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    lines.append(f"description: *a{levels}")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_quickly_in_bounded_memory(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    assert len(bomb.read_bytes()) < 600
    child = textwrap.dedent(f"""
        import json, resource, time
        from costbench.errors import UserError
        from costbench.spec import load_sweep
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        try:
            load_sweep({str(bomb)!r})
            message = None
        except UserError as exc:
            message = str(exc)
        seconds = time.perf_counter() - start
        grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(json.dumps({{"message": message, "seconds": seconds, "grown_kb": grown_kb}}))
    """)
    # the old loader needed 37 s and 5.9 GB for this file: the timeout turns that into a plain failure
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=30, cwd=ROOT,
                         check=True)
    result = json.loads(out.stdout)
    assert result["message"] is not None, "the bomb was accepted"
    assert f"{bomb}:" in result["message"] and "aliases expand to more than" in result["message"]
    assert result["seconds"] < 2.0, result
    assert result["grown_kb"] < 50_000, result  # peak RSS grew by under 50 MB


def test_alias_bomb_is_one_line_exit_2(tmp_path: Path) -> None:
    _, result = run_validate(tmp_path, alias_bomb())
    line = one_line_error(result)
    assert "sweep.yaml:" in line and f"more than {MAX_NODES:,} nodes" in line


def test_moderate_aliases_still_work(tmp_path: Path) -> None:
    """Aliases are legitimate YAML: sharing a list between grid axes is fine while it stays small."""
    text = "name: t\ndata: {rows: 1000}\ngrid:\n  seed: &seeds [1, 2]\n  data.seed: *seeds\n"
    path = tmp_path / "ok.yaml"
    path.write_text(text)
    assert len(load_sweep(path).trials) == 4


def test_recursive_alias_is_one_line(tmp_path: Path) -> None:
    _, result = run_validate(tmp_path, "name: t\ngrid: &g\n  x: *g\n")
    line = one_line_error(result)
    assert "sweep.yaml:3:6" in line and "recursive" in line


def test_alias_bomb_in_a_set_value_is_refused(tmp_path: Path) -> None:
    value = "[" + ", ".join(["&a0 [x, x, x, x, x, x, x, x, x]"] + [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]"
                                                                   for i in range(1, 8)]) + "]"
    _, result = run_validate(tmp_path, "name: t\n", "--set", f"description={value}")
    assert "aliases expand to more than" in one_line_error(result)


@pytest.mark.parametrize("depth", [60, 5000])
def test_deep_nesting_is_one_line_not_a_recursion_error(tmp_path: Path, depth: int) -> None:
    line = one_line_error(run_validate(tmp_path, f"name: t\ndescription: {'[' * depth}{']' * depth}\n")[1])
    assert "sweep.yaml:2:" in line and "nest more than 50 levels" in line


def test_a_grid_too_big_to_expand_is_one_line(tmp_path: Path) -> None:
    text = ("name: t\ngrid:\n  seed: &v [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n  data.seed: *v\n  train.epochs: *v\n"
            "  threads: *v\n  model.size: [xs, s]\n")
    line = one_line_error(run_validate(tmp_path, text)[1])
    assert "sweep.yaml:2:1" in line and "20,000 trials" in line
    line = one_line_error(run_validate(tmp_path, "name: t\nrepeats: 1000000000\n")[1])
    assert "sweep.yaml:2:1: repeats" in line and "repeats (1,000,000,000)" in line and "1,000,000,000 trials" in line


@pytest.mark.parametrize(
    ("text", "where", "key", "first"),
    [
        ("name: e\nname: f\n", "sweep.yaml:2:1", "name", 1),
        ("name: e\ndata:\n  rows: 1000\n  seed: 3\n  rows: 2000\n", "sweep.yaml:5:3", "rows", 3),
        ("name: e\ndata: {rows: 1000, rows: 2000}\n", "sweep.yaml:2:20", "rows", 2),
        ("name: e\ninclude:\n  - {precision: fp32,\n     precision: int8}\n", "sweep.yaml:4:6", "precision", 3),
        ("name: e\ngrid:\n  precision: [fp32]\n  'precision': [int8]\n", "sweep.yaml:4:3", "precision", 3),
    ],
    ids=["top-level", "nested", "flow", "in-a-list", "quoted"],
)
def test_duplicate_keys_are_refused(tmp_path: Path, text: str, where: str, key: str, first: int) -> None:
    line = one_line_error(run_validate(tmp_path, text)[1])
    assert f"{where}: duplicate key '{key}' (first at line {first})" in line


def test_a_merge_key_may_be_overridden(tmp_path: Path) -> None:
    """`<<: *base` then a key of base is YAML's documented override, not a duplicate."""
    path = tmp_path / "merge.yaml"
    path.write_text("name: t\ntrain: {<<: {epochs: 2, lr: 0.01}, epochs: 4}\n")
    assert load_sweep(path).trials[0].config["train"]["epochs"] == 4


def test_the_name_rule_is_shown_as_written_and_in_words(tmp_path: Path) -> None:
    line = one_line_error(run_validate(tmp_path, "name: 'my sweep'\n")[1])
    assert "'my sweep'" in line and "^[A-Za-z0-9][A-Za-z0-9_.-]*$" in line
    assert "letters, digits, _, - and ." in line


def test_a_long_name_is_refused_before_it_names_a_directory(tmp_path: Path) -> None:
    line = one_line_error(run_validate(tmp_path, f"name: {'x' * 300}\n")[1])
    assert "sweep.yaml:1:1: name:" in line and "300 characters" in line and "at most 100" in line
    assert len(line) < 200


def test_echoed_values_are_short_and_non_ascii_reads_as_itself(tmp_path: Path) -> None:
    line = one_line_error(run_validate(tmp_path, f"name: t\ndevice: {'ü' * 500}\n")[1])
    assert "unknown device 'üüü" in line and "…'" in line and "\\u00fc" not in line
    assert len(line) < 250
    line = one_line_error(run_validate(tmp_path, "name: Müller\n")[1])
    assert "'Müller'" in line
    line = one_line_error(run_validate(tmp_path, f"name: t\ntrain: {{epochs: [{', '.join(['1'] * 400)}]}}\n")[1])
    assert "train.epochs" in line and "…" in line and len(line) < 250


def test_a_multi_line_value_stays_on_one_line(tmp_path: Path) -> None:
    line = one_line_error(run_validate(tmp_path, 'name: t\ndevice: "tp\\nu"\n')[1])
    assert "unknown device 'tp\\nu'" in line


def test_load_sweep_raises_user_error_not_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("name: t\ninclude: &i\n  - *i\n")
    with pytest.raises(UserError, match="recursive"):
        load_sweep(path)


@pytest.mark.parametrize(("text", "override"), [
    ('name: t\ndata: {"": 1}\n', None),
    ("name: t\n", "data.=1"),
    ('name: t\ndata: {"a[b": 1}\n', None),
])
def test_empty_and_odd_keys_are_located_without_hanging(tmp_path: Path, text: str, override: str | None) -> None:
    """An empty key once sent the line:col lookup into an endless loop."""
    _, result = run_validate(tmp_path, text, *(["--set", override] if override else []))
    assert "unknown key" in one_line_error(result)
