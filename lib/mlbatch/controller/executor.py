"""The executor interface: how the controller launches and watches one stage attempt.

Every executor runs the same stage command (`StageTask.command`); only the launcher
differs. Logs are not part of the interface: stages upload their own logs to storage.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol


class State(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in (State.SUCCEEDED, State.FAILED, State.CANCELLED)


@dataclass(frozen=True, kw_only=True)
class Resources:
    """What one attempt asks of the machine it runs on (Kubernetes requests/limits)."""

    cpu: str = "1"  # Kubernetes quantity, e.g. "2" or "500m"
    memory: str = "2Gi"
    gpu: int = 0  # nvidia.com/gpu; > 0 adds GPU nodeSelector and tolerations


@dataclass(frozen=True, kw_only=True)
class StageTask:
    """One attempt of one stage of one run: everything a launcher needs, nothing more."""

    run_id: str
    run_uri: str  # <storage>/runs/<run-id>
    stage: str  # etl, explore, features, train, evaluate, predict
    attempt: str  # attempt id, lowercase and DNS-safe, unique within the stage
    code_version: str  # also the image tag
    timeout_s: int = 3600
    resources: Resources = field(default_factory=Resources)
    env: dict[str, str] = field(default_factory=dict)  # non-secret settings only

    @property
    def command(self) -> list[str]:
        """The stage command, identical under every executor (and in every image)."""
        return [
            "python", "-m", f"mlbatch_jobs.{self.stage}",
            "--run", self.run_uri, "--attempt", self.attempt,
        ]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class StageStatus:
    state: State
    reason: str = ""  # words a person recognises: "exit code 2", "OOMKilled", ...
    exit_code: int | None = None
    retryable: bool = False


# A handle is a small JSON-serialisable dict stored in run.json; "executor" names its kind.
Handle = dict[str, Any]


class Executor(Protocol):
    name: str

    def launch(self, task: StageTask) -> Handle: ...

    def find(self, run_id: str, stage: str, attempt: str) -> Handle | None:
        """An existing launch of this attempt (adoption after a controller restart)."""
        ...

    def poll(self, handle: Handle) -> StageStatus: ...

    def cancel(self, handle: Handle) -> None: ...


def status_from_exit_code(code: int) -> StageStatus:
    """Map a stage's exit code to a status using the contract's exit-code classes."""
    from mlbatch.errors import ExitCode

    if code == ExitCode.OK:
        return StageStatus(state=State.SUCCEEDED, exit_code=0, reason="exit code 0")
    if code < 0:
        return StageStatus(
            state=State.FAILED, exit_code=code, retryable=True, reason=f"killed by signal {-code}"
        )
    meaning = {
        ExitCode.BAD_INPUT: "bad spec, input or usage",
        ExitCode.VALIDATION_FAILED: "validation or quality gate failed",
        ExitCode.SUPERSEDED: "superseded by another attempt",
    }.get(code)
    retryable = meaning is None
    reason = f"exit code {code}" + (f" ({meaning})" if meaning else "")
    return StageStatus(state=State.FAILED, exit_code=code, retryable=retryable, reason=reason)
