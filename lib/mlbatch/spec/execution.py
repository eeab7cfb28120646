"""The `execution:` section: retries, backoff, timeouts and resources per stage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlbatch.spec.base import ALL_STAGES, Model


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
    stages: dict[Literal[ALL_STAGES], StageExecution] = Field(default_factory=dict)  # type: ignore[valid-type]
