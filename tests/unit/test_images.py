"""Dockerfiles: linted, one per stage plus the controller, each installing its own extra."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mlbatch.spec import STAGES

IMAGES = Path(__file__).resolve().parents[2] / "images"
NAMES = [*STAGES, "predict", "controller"]


@pytest.mark.parametrize("name", NAMES)
def test_dockerfile_shape(name: str):
    text = (IMAGES / name / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "ARG BASE_IMAGE=python:3.11-slim"
    extra = "kubernetes" if name == "controller" else name
    assert f"-c constraints.txt '.[{extra}]'" in text
    assert "USER 65532:65532" in text and "HOME=/tmp" in text
    assert 'io.mlbatch.code-version="${CODE_VERSION}"' in text
    if name != "controller":
        assert "MLBATCH_CODE_VERSION=${CODE_VERSION}" in text


def test_hadolint_is_clean():
    hadolint = shutil.which("hadolint") or str(
        Path(__import__("sys").executable).parent / "hadolint"
    )
    files = [str(IMAGES / name / "Dockerfile") for name in NAMES]
    result = subprocess.run([hadolint, "--failure-threshold", "warning", *files],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
