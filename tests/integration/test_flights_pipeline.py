"""The flights demo end to end, through the CLI, on file:// and on a real S3 server."""

from __future__ import annotations

import pytest
from pipeline_checks import FAST, REPO, check_run, mlbatch, run_json

from mlbatch import storage

pytestmark = pytest.mark.slow
SAMPLE = ["--set", "etl.sample_rows=30000"]


@pytest.fixture(params=["file", "s3"])
def storage_root(request):
    return request.getfixturevalue("file_storage" if request.param == "file" else "s3_env")


def test_flights_demo_end_to_end(storage_root):
    assert mlbatch("demo-data", "--storage", storage_root).returncode == 0
    result = mlbatch(
        "run", str(REPO / "examples/flights.yaml"), "--storage", storage_root,
        "--output", "json", *SAMPLE, *FAST,
    )  # fmt: skip
    summary = run_json(result)
    assert result.returncode == 0, result.stderr
    assert summary["state"] == "succeeded"
    manifests = check_run(storage_root, summary["run_id"])

    # No column known only after departure reached the model.
    features = manifests["features"]
    schema_uri = storage.join(
        storage_root, "runs", summary["run_id"], "features", "attempts", features.attempt,
        "feature_schema.json",
    )  # fmt: skip
    import json

    schema = json.loads(storage.read_bytes(schema_uri))
    names = {f["source"] for f in schema["features"]}
    for column in ("dep_time", "dep_delay", "arr_time", "air_time", "arr_delay", "delayed"):
        assert column not in names
        assert column in schema["excluded"]

    metrics = summary["metrics"]
    assert 0.62 <= metrics["roc_auc"] <= 0.85, metrics  # above 0.85 would be a leak
    assert {"log_loss", "accuracy"} <= set(metrics)
    assert summary["reports"]["evaluate"].endswith("report.html")

    status = run_json(mlbatch("status", summary["run_id"], "--storage", storage_root, "-o", "json"))
    assert status["state"] == "succeeded" and status["metrics"] == metrics
    stage_seconds = sum(stage["profile"]["wall_s"] for stage in status["stages"].values())
    assert stage_seconds <= status["wall_s"], status  # the run's wall time spans its stages
    listed = run_json(mlbatch("runs", "--storage", storage_root, "-o", "json"))
    assert listed[0]["run_id"] == summary["run_id"]
    log = mlbatch("logs", summary["run_id"], "train", "--storage", storage_root)
    assert log.returncode == 0 and "train committed" in log.stdout.replace("[mlbatch] ", "")
