"""Stage manifests: the commit record of a stage, and the only thing downstream reads.

A stage commits by creating `<run>/<stage>/_manifest.json` exclusively. The manifest names
the attempt whose outputs it adopts; nothing is copied on commit.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlbatch import storage
from mlbatch.errors import BadInput
from mlbatch.runs import RunLayout

SCHEMA_VERSION = 1


class OutputFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int
    sha256: str


class Input(BaseModel):
    """An upstream manifest (by hash) or a raw external input (by URI, size and version)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["manifest", "external"]
    uri: str
    sha256: str | None = None  # manifests
    size: int | None = None  # external inputs
    version: str | None = None  # ETag on S3, mtime on file://


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wall_s: float
    cpu_s: float  # user + system: the stage, its children, a local Ray's workers (unwaited_cpu)
    peak_rss_mb: float  # the largest of the stage and its children


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    run_id: str
    stage: str
    attempt: str
    status: Literal["succeeded", "rejected"]  # rejected: a quality gate failed (exit 3)
    exit_code: int
    code_version: str
    config_hash: str
    inputs: list[Input] = Field(default_factory=list)
    outputs: dict[str, OutputFile] = Field(default_factory=dict)  # path in the attempt dir
    metrics: dict[str, Any] = Field(default_factory=dict)
    profile: Profile
    started: float
    finished: float
    cached_from: str | None = None  # run id whose outputs this run's copy came from
    cache_key: str | None = None  # set when the controller asked (mlbatch.cache)

    def to_bytes(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True).encode()


def commit(layout: RunLayout, manifest: Manifest) -> bool:
    """Create the stage's manifest; False if another attempt committed first (superseded)."""
    return storage.create_exclusive(layout.manifest_uri(manifest.stage), manifest.to_bytes())


def load_manifest(layout: RunLayout, stage: str) -> tuple[Manifest, str] | None:
    """A stage's manifest and the sha256 of its bytes, or None if it has not committed."""
    try:
        data = storage.read_bytes(layout.manifest_uri(stage))
    except FileNotFoundError:
        return None
    return Manifest.model_validate_json(data), hashlib.sha256(data).hexdigest()


def output_uri(layout: RunLayout, manifest: Manifest, path: str) -> str:
    """Where a committed output lives (in the attempt the manifest adopted)."""
    if path not in manifest.outputs:
        raise BadInput(f"stage {manifest.stage} committed no output {path!r}")
    return storage.join(layout.attempt_uri(manifest.stage, manifest.attempt), path)


def config_hash(config: Any) -> str:
    data = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode()).hexdigest()[:16]
