"""What the cluster tests ask of a run: found by its controller Job's name, its stage
Jobs, and the checks of a run that succeeded."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kube_cluster import RELEASE, Cluster

from mlbatch.spec import STAGES

# The CLI runner and JSON reader the end-to-end tests share (tests/integration).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from pipeline_checks import mlbatch, run_json  # noqa: E402


def new_sample(demo_spec: Path, offset: int) -> tuple[str, str]:
    """`--set etl.seed=...`: a sample of its own for one test's run, and new each session
    (the session's demo seed plus offset), so none of its stages comes from the cache of
    an earlier run on the same cluster's storage."""
    seed = json.loads(demo_spec.read_text())["etl"]["seed"] + offset
    return "--set", f"etl.seed={seed}"


def find_run(storage: str, env: dict, name: str) -> dict | None:
    """The status of the run bound to this name (a controller Job's `--run-name`), as
    `mlbatch status NAME` shows it; None until the controller has created the run."""
    result = mlbatch("status", name, "--storage", storage, "--output", "json", env=env)
    if result.returncode != 0 or not result.stdout.strip():
        return None
    return run_json(result)


def stage_jobs(cluster: Cluster, run_id: str, stage: str | None = None) -> list[dict]:
    selector = f"mlbatch.io/run={run_id}" + (f",mlbatch.io/stage={stage}" if stage else "")
    return cluster.items("jobs", "--namespace", RELEASE, "--selector", selector)


def stage_of(job: dict) -> str:
    return job["metadata"]["labels"]["mlbatch.io/stage"]


def check_succeeded(cluster: Cluster, storage: str, env: dict, run_id: str) -> dict:
    status = run_json(mlbatch("status", run_id, "--storage", storage, "--output", "json", env=env))
    assert status["state"] == "succeeded", status
    jobs = cluster.items("jobs", "--namespace", RELEASE, "--selector", f"mlbatch.io/run={run_id}")
    stages_run = {j["metadata"]["labels"]["mlbatch.io/stage"] for j in jobs}
    assert stages_run == set(STAGES) - {"predict"} or stages_run == set(STAGES), stages_run
    # One Job per attempt and no duplicates: every stage ran once.
    assert len(jobs) == len(stages_run), [j["metadata"]["name"] for j in jobs]
    log = mlbatch("logs", run_id, "train", "--storage", storage, env=env)
    assert log.returncode == 0 and log.stdout.strip(), log.stderr
    return status
