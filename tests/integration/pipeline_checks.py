"""Checks shared by the end-to-end tests: every manifest and every output of a run."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from mlbatch import logs, storage
from mlbatch.codeversion import code_version
from mlbatch.controller.planner import DEPENDENCIES
from mlbatch.manifest import load_manifest
from mlbatch.runs import RunLayout
from mlbatch.spec import STAGES

REPO = Path(__file__).resolve().parents[2]
FAST = [  # a small search: the tests check the shape, bench/ checks the quality
    "--set", "train.num_samples=2", "--set", "train.time_budget_s=40",
]  # fmt: skip


def mlbatch(
    *args: str, env: dict | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "mlbatch.controller.cli", *args],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd, timeout=900,
    )  # fmt: skip


def run_json(result: subprocess.CompletedProcess) -> dict:
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout)


def check_run(storage_uri: str, run_id: str) -> dict:
    """Every stage committed once, with outputs whose sizes and hashes match the manifest."""
    layout = RunLayout(storage_uri, run_id)
    manifests = {}
    for stage in STAGES:
        loaded = load_manifest(layout, stage)
        assert loaded is not None, f"{stage} did not commit"
        manifest, digest = loaded
        manifests[stage] = (manifest, digest)
        assert manifest.stage == stage and manifest.run_id == run_id
        assert manifest.status == "succeeded" and manifest.exit_code == 0
        # A stage records the hash of its code when it runs; a different hash now most
        # often means the files changed while the test ran (an editor, a helper's work).
        assert manifest.code_version == code_version(stage), (
            f"{stage} ran code {manifest.code_version}, the checkout now hashes to "
            f"{code_version(stage)}: were its files edited during the test?")
        assert manifest.profile.wall_s > 0 and manifest.profile.cpu_s > 0
        assert manifest.profile.peak_rss_mb > 0
        assert manifest.outputs, f"{stage} committed no outputs"
        attempt_uri = layout.attempt_uri(stage, manifest.attempt)
        for path, output in manifest.outputs.items():
            uri = storage.join(attempt_uri, path)
            info = storage.stat(uri)
            assert info is not None and info.size == output.size, uri
            assert storage.sha256_uri(uri) == output.sha256, uri
        log = logs.read_log(layout.log_prefix(stage, manifest.attempt)).decode()
        assert f"{stage} attempt {manifest.attempt}" in log
        assert "committed" in log
    for stage, (manifest, _) in manifests.items():
        upstream = {i.uri: i.sha256 for i in manifest.inputs if i.kind == "manifest"}
        expected = {layout.manifest_uri(d): manifests[d][1] for d in DEPENDENCIES[stage]}
        assert upstream == expected, f"{stage} inputs {upstream} != {expected}"
    externals = [i for i in manifests["etl"][0].inputs if i.kind == "external"]
    assert externals and all(i.size and i.version for i in externals)
    return {stage: m for stage, (m, _) in manifests.items()}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
