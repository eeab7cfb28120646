"""Exit codes and the exceptions that carry them (the same for every stage, the controller
and the CLI)."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1  # anything not below is retryable
    BAD_INPUT = 2  # bad spec, input or usage: never retried
    VALIDATION_FAILED = 3  # validation or quality gate failed: never retried
    SUPERSEDED = 4  # another attempt committed this stage


class MlbatchError(Exception):
    """An error with a one-line message meant for a person, and the exit code it maps to."""

    exit_code: ExitCode = ExitCode.FAILED


class BadInput(MlbatchError):
    exit_code = ExitCode.BAD_INPUT


class ValidationFailed(MlbatchError):
    exit_code = ExitCode.VALIDATION_FAILED


class Superseded(MlbatchError):
    exit_code = ExitCode.SUPERSEDED


class StorageError(MlbatchError):
    """Storage unreachable or misbehaving: retryable."""
