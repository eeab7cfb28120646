"""Faults a batch platform meets every week; each test counts what was lost (zero).

Real processes and a real S3 server throughout: stages are killed with SIGKILL, the
controller too, and the SeaweedFS server is killed and restarted mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_checks import check_run, mlbatch
from seaweedfs import SeaweedFS
from small_tables import QUICK, cancer_csv

from mlbatch import arrow_s3, runs, storage
from mlbatch.manifest import load_manifest
from mlbatch.runs import RunLayout
from mlbatch.spec import STAGES

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "mlbatch.controller.cli"]


def _start(root: str, data: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    """The controller as its own process (own session, so killing it spares pytest)."""
    return subprocess.Popen(
        [*CLI, "run", "--data", str(data), "--target", "target", "--storage", root,
         "-o", "json", *QUICK, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})}, start_new_session=True,
    )  # fmt: skip


def _wait_for(predicate, *, timeout_s: float = 240, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _only_run(root: str) -> RunLayout:
    ids = _wait_for(lambda: runs.list_run_ids(root), what="the run to exist")
    return RunLayout(root, ids[0])


def _running(layout: RunLayout, stage: str) -> dict | None:
    """The handle of the stage's attempt while it runs."""
    state = runs.read_state(layout) or {}
    record = (state.get("stages") or {}).get(stage) or {}
    last = (record.get("attempts") or [{}])[-1]
    return last.get("handle") if last.get("state") == "RUNNING" else None


def _unadopted(layout: RunLayout) -> list[str]:
    """Objects under the run that neither a manifest nor the run record accounts for."""
    allowed = {layout.spec_uri, layout.state_uri}
    for stage in STAGES:
        manifest = load_manifest(layout, stage)[0]
        allowed.add(layout.manifest_uri(stage))
        attempt = layout.attempt_uri(stage, manifest.attempt)
        allowed |= {storage.join(attempt, path) for path in manifest.outputs}
        allowed |= set(storage.list_uris(layout.log_prefix(stage, manifest.attempt)))
        allowed |= set(storage.list_uris(layout.scratch_uri(stage, manifest.attempt)))
    return [uri for uri in storage.list_uris(layout.uri) if uri not in allowed]


def test_storage_outage_mid_stage_then_gc_leaves_nothing_unaccounted(tmp_path):
    data = cancer_csv(tmp_path)
    with SeaweedFS.start() as server:
        server.client().create_bucket(Bucket="outage")
        env = {**server.env(), "MLBATCH_STORAGE_RETRY_S": "120"}
        for name, value in env.items():
            os.environ[name] = value  # this process reads the bucket too
        try:
            storage.s3_client.cache_clear()
            root = "s3://outage"
            controller = _start(root, data, env=env)
            layout = _only_run(root)
            _wait_for(lambda: _running(layout, "train"), what="train to start")
            server.kill()
            time.sleep(3)
            server.restart()
            out, err = controller.communicate(timeout=600)
            assert controller.returncode == 0, err
            check_run(root, layout.run_id)
            collected = mlbatch("gc", layout.run_id, "--logs", "--storage", root, env=env)
            assert collected.returncode == 0, collected.stderr
            assert _unadopted(layout) == []
        finally:
            for name in env:
                os.environ.pop(name, None)
            storage.s3_client.cache_clear()
            arrow_s3.from_environment.cache_clear()


def test_a_stage_killed_mid_write_is_retried_and_nothing_half_written_commits(
    tmp_path, file_storage
):
    data = cancer_csv(tmp_path)
    controller = _start(file_storage, data)
    layout = _only_run(file_storage)
    handle = _wait_for(lambda: _running(layout, "train"), what="train to start")
    first = runs.read_state(layout)["stages"]["train"]["attempts"][0]["id"]
    # Killed once it has written something (its log), so there is a half-done attempt.
    _wait_for(lambda: storage.list_uris(layout.log_prefix("train", first)), what="a log chunk")
    os.killpg(handle["pid"], signal.SIGKILL)
    out, err = controller.communicate(timeout=600)
    assert controller.returncode == 0, err
    manifests = check_run(file_storage, layout.run_id)
    attempts = runs.read_state(layout)["stages"]["train"]["attempts"]
    assert len(attempts) == 2 and attempts[0]["reason"] == "killed by signal 9"
    assert manifests["train"].attempt == attempts[1]["id"]
    result = mlbatch("gc", layout.run_id, "--logs", "--storage", file_storage)
    assert result.returncode == 0 and attempts[0]["id"] in result.stdout
    assert _unadopted(layout) == []


def test_a_killed_controller_is_resumed_without_rerunning_committed_stages(tmp_path, file_storage):
    data = cancer_csv(tmp_path)
    controller = _start(file_storage, data)
    layout = _only_run(file_storage)
    handle = _wait_for(lambda: _running(layout, "train"), what="train to start")
    os.killpg(controller.pid, signal.SIGKILL)
    controller.communicate()
    # The stage dies with its controller (PR_SET_PDEATHSIG), so nothing runs unattended.
    _wait_for(lambda: not Path(f"/proc/{handle['pid']}").exists(), timeout_s=30,
              what="the orphaned stage to die")  # fmt: skip
    before = {s: load_manifest(layout, s) for s in STAGES}
    assert before["train"] is None and before["features"] is not None
    result = mlbatch("resume", layout.run_id, "--storage", file_storage, "-o", "json")
    assert result.returncode == 0, result.stderr
    check_run(file_storage, layout.run_id)
    state = runs.read_state(layout)
    for stage in ("etl", "explore", "features"):
        assert load_manifest(layout, stage) == before[stage]  # not rerun
        assert len(state["stages"][stage]["attempts"]) == 1
    assert state["resumes"] and state["state"] == "succeeded"


def test_two_attempts_racing_to_commit_leave_one_manifest(tmp_path, file_storage):
    data = cancer_csv(tmp_path)
    layout = RunLayout(file_storage, runs.new_run_id())
    spec = {"name": "race", "target": "target", "etl": {"sources": {"d": {"uri": str(data)}}}}
    runs.write_spec(layout, spec)
    stage = [sys.executable, "-m", "mlbatch_jobs.etl", "--run", layout.uri, "--attempt"]
    racers = [subprocess.Popen([*stage, f"{n}-race"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) for n in (1, 2, 3)]  # fmt: skip
    codes = sorted(p.wait(timeout=120) for p in racers)
    assert codes == [0, 4, 4]
    manifest = load_manifest(layout, "etl")[0]
    committed = [u for u in storage.list_uris(layout.uri) if u.endswith("_manifest.json")]
    assert committed == [layout.manifest_uri("etl")]
    assert manifest.attempt.endswith("-race")


def test_two_concurrent_runs_of_one_spec_do_not_share_files(tmp_path, file_storage):
    data = cancer_csv(tmp_path)
    first, second = _start(file_storage, data), _start(file_storage, data)
    results = [json.loads(p.communicate(timeout=600)[0]) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0
    ids = {r["run_id"] for r in results}
    assert len(ids) == 2
    for run_id in ids:
        check_run(file_storage, run_id)
