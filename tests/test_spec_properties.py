"""Property tests of the sweep loader (issue 16): any input gives a valid Sweep or one UserError line.

Random YAML documents, random text, and random mutations of the shipped sweep files (a key deleted,
a value replaced by a random scalar, list or mapping, a key written twice, a node repeated through an
alias, recursive ones included, and nesting up to 150 levels deep). Never another exception, never
more than a few seconds.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costbench.errors import UserError
from costbench.spec import Sweep, load_sweep

ROOT = Path(__file__).parents[1]
SHIPPED = sorted((ROOT / "sweeps").glob("*.yaml"))
SECONDS_PER_INPUT = 3.0  # the loader takes milliseconds; this only catches a blow-up
PROPERTY = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

KEYS = st.sampled_from(["name", "data", "model", "train", "serve", "grid", "include", "exclude", "precision",
                        "device", "family", "size", "rows", "epochs", "batch_sizes", "model.size", "seed",
                        "source", "path", "objectives", "repeats", "executor", "quantize", "threads"])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(max_size=30), st.sampled_from(["fp32", "int8", "xs", "cuda", "auc:max", "csv", "mlp", ""]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(KEYS, st.text(max_size=10)), inner, max_size=4)),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prop") / "sweep.yaml"


def check(path: Path, text: str) -> Sweep | None:
    """The property: a Sweep, or a UserError of one line that names the file; fast."""
    path.write_text(text, encoding="utf-8")
    start = time.perf_counter()
    try:
        sweep = load_sweep(path)
    except UserError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message, message
        assert message.startswith(str(path)) or message.startswith("--set"), message
        assert len(message) < 1000, message
        sweep = None
    assert time.perf_counter() - start < SECONDS_PER_INPUT, text[:500]
    return sweep


@PROPERTY
@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_random_documents(sweep_file: Path, document: dict) -> None:
    check(sweep_file, yaml.safe_dump(document, allow_unicode=True))


@PROPERTY
@given(st.text(alphabet=st.sampled_from(list("name: t\n-[]{},&*!|>'\"#%@`?xyz019.")), max_size=120))
def test_random_text(sweep_file: Path, text: str) -> None:
    check(sweep_file, text)


# ---------------------------------------------------------------------------------- mutations


def nodes_of(node: yaml.Node) -> list[yaml.Node]:
    found, stack, seen = [], [node], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        if isinstance(current, yaml.MappingNode):
            stack.extend(v for pair in current.value for v in pair)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    return found


def as_node(value: object) -> yaml.Node:
    return yaml.compose(yaml.safe_dump(value, allow_unicode=True))


def nested_node(depth: int) -> yaml.Node:
    """[[[...]]] ``depth`` levels deep, built as nodes (PyYAML's own dumper recurses per level)."""
    node: yaml.Node = yaml.SequenceNode(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, [])
    for _ in range(depth - 1):
        node = yaml.SequenceNode(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, [node])
    return node


def bomb_node(levels: int, width: int = 9) -> yaml.Node:
    """Nested lists that share one child ``width`` times per level: serialised as anchors and aliases."""
    node: yaml.Node = yaml.SequenceNode(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,
                                        [yaml.ScalarNode("tag:yaml.org,2002:str", "x")] * width)
    for _ in range(levels):
        node = yaml.SequenceNode(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, [node] * width)
    return node


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, str]:
    """A shipped sweep with 1-3 random edits, serialised back to YAML text; and what was done."""
    source = draw(st.sampled_from(SHIPPED))
    root = yaml.compose(source.read_text())
    done = []
    for _ in range(draw(st.integers(1, 3))):
        all_nodes = nodes_of(root)
        mappings = [n for n in all_nodes if isinstance(n, yaml.MappingNode) and n.value]
        target = draw(st.sampled_from(mappings))
        i = draw(st.integers(0, len(target.value) - 1))
        key = target.value[i][0]
        op = draw(st.sampled_from(["delete", "replace", "duplicate", "alias", "recursive", "bomb", "deep"]))
        if op == "delete":
            del target.value[i]
        elif op == "replace":
            target.value[i] = (key, as_node(draw(VALUES)))
        elif op == "duplicate":
            target.value.insert(i + 1, (copy.deepcopy(key), as_node(draw(VALUES))))
        elif op == "alias":  # repeat another node here (an ancestor of it makes it recursive)
            target.value[i] = (key, draw(st.sampled_from(all_nodes)))
        elif op == "recursive":
            target.value[i] = (key, draw(st.sampled_from([root, target])))
        elif op == "bomb":
            target.value[i] = (key, bomb_node(draw(st.integers(1, 9))))
        else:
            target.value[i] = (key, nested_node(draw(st.integers(1, 150))))
        done.append(f"{op} {key.value}")
    return yaml.serialize(root, allow_unicode=True), f"{source.name}: {', '.join(done)}"


@PROPERTY
@given(mutated())
def test_mutated_shipped_sweeps(sweep_file: Path, case: tuple[str, str]) -> None:
    text, _ = case
    check(sweep_file, text)


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(SHIPPED), st.data())
def test_a_duplicated_key_is_always_reported(sweep_file: Path, source: Path, data: st.DataObject) -> None:
    root = yaml.compose(source.read_text())
    mappings = [n for n in nodes_of(root) if isinstance(n, yaml.MappingNode) and n.value]
    target = data.draw(st.sampled_from(mappings))
    key, value = data.draw(st.sampled_from(target.value))
    target.value.append((copy.deepcopy(key), copy.deepcopy(value)))
    sweep_file.write_text(yaml.serialize(root))
    with pytest.raises(UserError, match=f"duplicate key '{key.value}'"):
        load_sweep(sweep_file)


def test_the_shipped_sweeps_pass_the_property_unchanged(sweep_file: Path) -> None:
    for source in SHIPPED:
        assert check(sweep_file, source.read_text()) is not None, source


@PROPERTY
@given(st.lists(st.tuples(st.lists(KEYS, min_size=1, max_size=3).map(".".join),
                          st.one_of(VALUES.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()),
                                    st.text(max_size=20))),
                max_size=3))
def test_random_set_overrides(sweep_file: Path, overrides: list[tuple[str, str]]) -> None:
    sweep_file.write_text((ROOT / "sweeps/smoke.yaml").read_text())
    start = time.perf_counter()
    try:
        load_sweep(sweep_file, [f"{key}={value}" for key, value in overrides])
    except UserError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 1000, str(exc)
    assert time.perf_counter() - start < SECONDS_PER_INPUT
