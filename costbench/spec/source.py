"""Reading a sweep file: YAML parsing, key path -> 'line:column', and pydantic errors as one line.

Everything here is about *where* in the user's file something is, so each mistake can be told as
``file:line:col: key.path: what is wrong; what is allowed``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from costbench.errors import UserError, allowed_list, did_you_mean, echo
from costbench.spec.bounded_yaml import RejectedYAML, load_yaml


class Locator:
    """Maps key paths ('train.batch_size', 'grid.precision[1]') to YAML 'line:column'."""

    def __init__(self, node: yaml.Node | None) -> None:
        self._marks: dict[str, str] = {}
        if node is not None:
            self._walk(node, "", set())

    def _walk(self, node: yaml.Node, path: str, seen: set[int]) -> None:
        self._marks.setdefault(path, f"{node.start_mark.line + 1}:{node.start_mark.column + 1}")
        if id(node) in seen:  # an alias: what it repeats is located where the anchor wrote it, once
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = f"{path}.{key.value}" if path else str(key.value)
                self._marks[child] = f"{key.start_mark.line + 1}:{key.start_mark.column + 1}"
                self._walk(value, child, seen)
                self._marks[child] = f"{key.start_mark.line + 1}:{key.start_mark.column + 1}"
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, f"{path}[{i}]", seen)

    def where(self, file: Path, path: str) -> str:
        probe = path
        while probe:
            if probe in self._marks:
                return f"{file}:{self._marks[probe]}: {path}" if path else f"{file}:{self._marks[probe]}"
            parent = re.sub(r"(\[\d+\]|\.[^.\[]*|^[^.\[]*)$", "", probe)  # drop the last [i] or .key
            if parent == probe:  # a key holding '[' has no parent this pattern can find
                break
            probe = parent
        return f"{file}: {path}" if path else str(file)


def read_sweep_file(path: Path) -> tuple[dict[str, Any], Locator]:
    """Read and parse a sweep file, turning every way it can be unreadable into a UserError."""
    if not path.exists():
        raise UserError(f"no such file; check the path (cwd is {Path.cwd()})", where=str(path))
    if path.is_dir():
        yamls = sorted(p.name for p in path.glob("*.y*ml"))
        hint = f"; it holds {', '.join(yamls[:5])}" if yamls else ""
        raise UserError(f"is a directory, not a sweep file{hint}", where=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the file: {exc}", where=str(path)) from None
    if not text.strip():
        raise UserError("the file is empty; a sweep needs at least 'name:' (see sweeps/quickstart.yaml)",
                        where=str(path))
    try:
        node, raw = load_yaml(text)
    except RejectedYAML as exc:
        raise UserError(str(exc.problem), where=_at(path, exc.problem_mark)) from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"broken YAML: {problem}", where=_at(path, getattr(exc, "problem_mark", None))) from None
    if not isinstance(raw, dict):
        raise UserError(
            f"the top level must be a mapping of sections (name:, data:, grid:, ...), not {_kind(raw)}",
            where=str(path),
        )
    return raw, Locator(node)


def _at(path: Path, mark: yaml.Mark | None) -> str:
    return f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean",
            type(None): "nothing"}.get(type(value), type(value).__name__)


def validation_error(exc: ValidationError, path: Path, locator: Locator, model: type[BaseModel],
                     prefix: str | None = None) -> UserError:
    """Turn pydantic's first error into one line: where, what is wrong, what is allowed."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    key_path = ".".join(loc)
    for i in range(len(loc) - 1, 0, -1):
        if loc[i].isdigit():
            key_path = key_path.replace(f".{loc[i]}", f"[{loc[i]}]", 1)
    kind, got = err["type"], err.get("input")
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        what = "section" if len(loc) == 1 else "key"
        message = f"unknown {what} '{echo(loc[-1])}'{did_you_mean(loc[-1], allowed)}; allowed: {allowed_list(allowed)}"
    elif kind == "literal_error":
        expected = re.findall(r"'([^']*)'", err["ctx"]["expected"])
        message = f"unknown value '{echo(got)}'{did_you_mean(got, expected)}; allowed: {allowed_list(expected)}"
    elif kind == "missing":
        message = "is required"
    elif kind == "value_error":
        message = str(err["ctx"]["error"])
    else:
        message = f"{err['msg'][:1].lower()}{err['msg'][1:]} (got {echo(got)})"
    if prefix:
        redundant = not key_path or prefix.startswith(f"grid.{key_path}[")
        return UserError(message if redundant else f"{key_path}: {message}", where=locator.where(path, prefix))
    return UserError(message, where=locator.where(path, key_path))


def _fields_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    for part in loc:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        sections = [a for a in (annotation, *get_args(annotation))  # an optional section: Section | None
                    if isinstance(a, type) and issubclass(a, BaseModel)]
        if not sections:
            return []
        model = sections[0]
    return list(model.model_fields)
