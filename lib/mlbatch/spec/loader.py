"""YAML in, a validated PipelineSpec out; errors name the file, line and key."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mlbatch.errors import BadInput
from mlbatch.spec.pipeline import PipelineSpec


class SpecLoader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 reads `on:` (as in `join: on:`), `yes`,
    `no` and `off` as booleans, which surprises everyone who writes a spec."""


SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def parse_yaml(text: str):
    return yaml.load(text, Loader=SpecLoader)  # noqa: S506 (a SafeLoader subclass)


def load_spec(path: Path, overrides: list[str] = ()) -> PipelineSpec:
    """Read, override and validate a spec file; BadInput naming file, line and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise BadInput(f"cannot read spec {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise BadInput(f"{path}: the spec is not UTF-8 text (byte {error.start})") from None
    try:
        node = yaml.compose(text, Loader=SpecLoader)
        data = parse_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise BadInput(f"{where}: not valid YAML: {getattr(error, 'problem', error)}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: a spec is a YAML mapping of keys (name, target, etl, ...)")
    return validate_spec(data, overrides, source=str(path), node=node)


def validate_spec(
    data: dict, overrides: list[str] = (), *, source: str = "spec", node: yaml.Node | None = None
) -> PipelineSpec:
    data = apply_overrides(data, overrides)
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as error:
        raise BadInput(_describe(error, source, node, overrides)) from None


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `path.to.key=value` overrides (values parsed as YAML) to a copy of data."""
    data = copy.deepcopy(data)
    for override in overrides:
        path, sep, raw = override.partition("=")
        if not sep or not path:
            raise BadInput(f"--set {override!r}: expected path.to.key=value")
        try:
            value = parse_yaml(raw) if raw else ""
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", error)
            raise BadInput(f"--set {override!r}: not valid YAML: {problem}") from None
        keys = path.split(".")
        target: Any = data
        for key in keys[:-1]:
            target = _step(target, key, override, create=True)
        last = keys[-1]
        if isinstance(target, list):
            target[_index(target, last, override)] = value
        elif isinstance(target, dict):
            target[last] = value
        else:
            raise BadInput(f"--set {override!r}: {'.'.join(keys[:-1])} is not a mapping")
    return data


def _step(target: Any, key: str, override: str, *, create: bool) -> Any:
    if isinstance(target, list):
        return target[_index(target, key, override)]
    if not isinstance(target, dict):
        raise BadInput(f"--set {override!r}: cannot descend into {key!r}")
    if key not in target or target[key] is None:
        target[key] = {}
    return target[key]


def _index(target: list, key: str, override: str) -> int:
    if not key.isdigit() or int(key) >= len(target):
        raise BadInput(f"--set {override!r}: {key!r} is not an index of a {len(target)}-item list")
    return int(key)


def _describe(error: ValidationError, source: str, node: yaml.Node | None, overrides) -> str:
    lines = []
    override_paths = {o.partition("=")[0] for o in overrides}
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        key = ".".join(loc) or "(top level)"
        message = {
            "extra_forbidden": "unknown key",
            "missing": "required key is missing",
        }.get(item["type"], item["msg"])
        if item["type"] == "value_error":  # our own validators' words, without pydantic's prefix
            message = str(item["ctx"]["error"])
        if key in override_paths or any(p.startswith(f"{key}.") for p in override_paths):
            where = f"--set {key}"
        else:
            line = _line_of(node, item["loc"])
            where = f"{source}:{line}" if line else source
        lines.append(f"{where}: {key}: {message}" if loc else f"{where}: {message}")
    return "\n".join(lines)


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the deepest YAML node along a pydantic error location."""
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(part)]
            if not match:
                return line
            key_node, node = match[0]
            line = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
            if node is not None:
                line = node.start_mark.line + 1
        else:
            break
    return line
