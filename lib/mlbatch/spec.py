"""The pipeline spec: pydantic models, YAML in, errors that name the key and its line out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlbatch.errors import BadInput

STAGES = ("etl", "explore", "features", "train", "evaluate")
Task = Literal["auto", "binary", "multiclass", "regression"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Source(Model):
    uri: str = Field(
        description="file or glob: relative to the storage root, an absolute path, or a URI"
    )
    format: Literal["auto", "csv", "parquet", "jsonl"] = "auto"

    def location(self, storage_uri: str) -> str:
        """The source's URI: relative locations are under the storage root."""
        from mlbatch import storage

        if "://" in self.uri or self.uri.startswith("/"):
            return storage.resolve_uri(self.uri)
        return storage.join(storage_uri, self.uri)


class Join(Model):
    source: str = Field(description="name of a source in etl.sources")
    on: list[str] = Field(min_length=1)
    how: Literal["left", "inner"] = "left"
    suffix: str | None = Field(
        default=None,
        description="added to clashing columns of the joined source; default _<source>",
    )


class EtlSpec(Model):
    sources: dict[str, Source] = Field(min_length=1)
    main: str | None = Field(default=None, description="the fact table; default: the first source")
    joins: list[Join] = Field(default_factory=list)
    derive: dict[str, str] = Field(
        default_factory=dict, description="new column -> pandas expression over existing columns"
    )
    filter: list[str] = Field(
        default_factory=list, description="pandas query expressions; rows must satisfy all"
    )
    parse_dates: list[str] = Field(default_factory=list)
    drop: list[str] = Field(default_factory=list)
    sample_rows: int | None = Field(default=None, gt=0, description="keep a random sample")
    seed: int = 0

    @model_validator(mode="after")
    def _names_exist(self) -> EtlSpec:
        if self.main is not None and self.main not in self.sources:
            raise ValueError(f"main {self.main!r} is not one of the sources {sorted(self.sources)}")
        for join in self.joins:
            if join.source not in self.sources:
                raise ValueError(
                    f"join source {join.source!r} is not one of the sources {sorted(self.sources)}"
                )
        return self

    @property
    def main_source(self) -> str:
        return self.main or next(iter(self.sources))


class SplitSpec(Model):
    train: float = Field(default=0.7, gt=0, lt=1)
    valid: float = Field(default=0.2, gt=0, lt=1)
    test: float = Field(default=0.1, gt=0, lt=1)
    seed: int = 42
    stratify: bool = Field(default=True, description="classification only")

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitSpec:
        if abs(self.train + self.valid + self.test - 1) > 1e-6:
            raise ValueError("train + valid + test must add up to 1")
        return self


class FeaturesSpec(Model):
    split: SplitSpec = Field(default_factory=SplitSpec)
    drop: list[str] = Field(default_factory=list, description="columns never used as features")
    max_categories: int = Field(
        default=200, gt=1, description="rarer categories of a column share one 'other' code"
    )


class TrainSpec(Model):
    models: list[Literal["xgboost", "lightgbm"]] = Field(
        default_factory=lambda: ["xgboost", "lightgbm"], min_length=1
    )
    num_samples: int = Field(default=8, gt=0, description="trials per model family")
    time_budget_s: int = Field(default=300, gt=0, description="for the whole search")
    max_concurrent_trials: int = Field(default=2, gt=0)
    seed: int = 0


class EvaluateSpec(Model):
    pass


class StageExecution(Model):
    retries: int | None = Field(default=None, ge=0)
    timeout_s: int | None = Field(default=None, gt=0)
    cpu: str | None = None
    memory: str | None = None
    gpu: int | None = Field(default=None, ge=0)


class ExecutionSpec(Model):
    retries: int = Field(default=1, ge=0, description="extra attempts after a retryable failure")
    backoff_s: float = Field(default=2.0, ge=0, description="first retry delay, doubled each time")
    timeout_s: int = Field(default=3600, gt=0, description="per attempt")
    stages: dict[Literal[STAGES], StageExecution] = Field(default_factory=dict)  # type: ignore[valid-type]


class PipelineSpec(Model):
    name: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
    description: str = ""
    target: str = Field(min_length=1)
    task: Task = "auto"
    known_after_prediction: list[str] = Field(
        default_factory=list,
        description="columns known only after the moment of prediction: never features",
    )
    id_columns: list[str] = Field(default_factory=list, description="identifiers: never features")
    etl: EtlSpec
    features: FeaturesSpec = Field(default_factory=FeaturesSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)

    @field_validator("known_after_prediction", "id_columns")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


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
        text = path.read_text()
    except OSError as error:
        raise BadInput(f"cannot read spec {path}: {error.strerror}") from None
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
    import copy

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
        if key in override_paths or any(p.startswith(f"{key}.") for p in override_paths):
            where = f"--set {key}"
        else:
            line = _line_of(node, item["loc"])
            where = f"{source}:{line}" if line else source
        lines.append(f"{where}: {key}: {message}")
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
