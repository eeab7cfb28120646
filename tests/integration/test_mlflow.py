"""MLflow tracking against a real MLflow server (SQLite backend, on loopback): a run becomes
an MLflow run with the spec's parameters, every Tune trial a nested run with its
hyperparameters and per-round curve, the test metrics with their intervals, the reports
and plots as artifacts, and the promoted model registered with the same alias; read back
through the MLflow client. A second sync logs nothing twice, and a server that is down
never fails a run."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mlflow_server import MlflowServer, find_mlflow
from pipeline_checks import check_run, mlbatch, run_json
from ports import free_port
from small_tables import cancer_csv

from mlbatch import registry, runs, storage
from mlbatch.manifest import load_manifest, output_uri
from mlbatch.runs import RunLayout

pytestmark = pytest.mark.slow
SMALL = [  # two LightGBM trials (nested runs with curves), a quick evaluation
    "--set", "train.models=[lightgbm]", "--set", "train.num_samples=2",
    "--set", "train.time_budget_s=20", "--set", "evaluate.bootstrap=50",
    "--set", "evaluate.permutation_repeats=1", "--set", "evaluate.gates=[roc_auc >= 0.6]",
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    program = find_mlflow()
    if program is None:
        message = "no MLflow server: `make mlflow-server` installs it in .venv/mlflow-server"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI=true, so this fails instead of skipping")
        pytest.skip(message)
    with MlflowServer.start(program, tmp_path_factory.mktemp("mlflow-server")) as running:
        yield running


@pytest.fixture(scope="module")
def tracked(server, tmp_path_factory) -> dict:
    """One tracked run of the cancer table, the tracking server named by the environment."""
    folder = tmp_path_factory.mktemp("tracked")
    root = storage.resolve_uri(str(folder / "store"))
    result = mlbatch(
        "run", "--data", str(cancer_csv(folder)), "--target", "target", "--storage", root,
        "--output", "json", *SMALL, env={"MLFLOW_TRACKING_URI": server.uri},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = run_json(result)
    check_run(root, summary["run_id"])
    from mlflow import MlflowClient

    return {"root": root, "folder": folder, "summary": summary, "stderr": result.stderr,
            "layout": RunLayout(root, summary["run_id"]),
            "client": MlflowClient(server.uri, registry_uri=server.uri)}  # fmt: skip


def parent_run(tracked: dict):
    client = tracked["client"]
    experiment = client.get_experiment_by_name("cancer")  # the spec's name
    found = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`mlbatch.run_id` = '{tracked['summary']['run_id']}'",
    )
    assert len(found) == 1, found
    return found[0]


def children(tracked: dict, run) -> list:
    return tracked["client"].search_runs(
        [run.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{run.info.run_id}'"
    )


def manifest(tracked: dict, stage: str):
    return load_manifest(tracked["layout"], stage)[0]


def read_output(tracked: dict, stage: str, path: str) -> bytes:
    return storage.read_bytes(output_uri(tracked["layout"], manifest(tracked, stage), path))


def artifacts(client, run_id: str, path: str = "") -> dict[str, int]:
    """Every artifact of a run, by path, with its size."""
    found = {}
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            found |= artifacts(client, run_id, item.path)
        else:
            found[item.path] = item.file_size
    return found


def test_the_run_is_an_mlflow_run_with_the_specs_parameters(tracked):
    run = parent_run(tracked)
    assert run.info.status == "FINISHED" and run.info.run_name == tracked["summary"]["run_id"]
    assert run.data.tags["mlbatch.state"] == "succeeded"
    params = run.data.params
    assert params["target"] == "target" and params["task"] == "binary"
    assert params["train.models"] == '["lightgbm"]' and params["train.time_budget_s"] == "20"
    assert params["evaluate.gates"] == '["roc_auc >= 0.6"]'
    assert not [key for key in params if key.startswith("tracking")]
    state = runs.read_state(tracked["layout"])
    assert state["mlflow"]["errors"] == 0 and state["mlflow"]["run_id"] == run.info.run_id
    assert tracked["summary"]["mlflow"]["url"].endswith(f"/runs/{run.info.run_id}")
    assert "warning" not in tracked["stderr"].lower()
    # Each stage's numbers and profile, as the manifests have them.
    train = manifest(tracked, "train")
    assert run.data.metrics["train.trials"] == train.metrics["trials"]
    assert run.data.metrics["etl.profile.wall_s"] == manifest(tracked, "etl").profile.wall_s


def test_every_trial_is_a_nested_run_with_its_hyperparameters_and_curve(tracked):
    run = parent_run(tracked)
    trials = pq.read_table(
        storage.local_path(output_uri(tracked["layout"], manifest(tracked, "train"),
                                      "trials.parquet"))
    ).to_pylist()  # fmt: skip
    nested = {child.data.tags["mlbatch.trial"]: child for child in children(tracked, run)}
    assert set(nested) == {f"{t['family']}/{t['trial_id']}" for t in trials}
    assert len(trials) == 2
    # A trial the budget ended before its last report has no final score and no curve.
    finished = [t for t in trials if t["valid"] is not None and not math.isnan(t["valid"])]
    assert finished
    client = tracked["client"]
    for trial in trials:
        child = nested[f"{trial['family']}/{trial['trial_id']}"]
        config = json.loads(trial["config"])
        assert {k: v for k, v in child.data.params.items() if k != "family"} == {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in config.items()
        }
        if trial not in finished:
            assert "valid_roc_auc" not in child.data.metrics
            continue
        assert child.data.metrics["roc_auc"] == pytest.approx(trial["roc_auc"])
        assert child.data.metrics["valid_roc_auc"] == pytest.approx(trial["valid"])
        history = client.get_metric_history(child.info.run_id, "curve/valid_roc_auc")
        points = sorted((m.step, m.value) for m in history)
        assert len(points) > 2
        assert points == [pytest.approx((r, v)) for r, v in zip(
            trial["curve_rounds"], trial["curve_valid"], strict=True)]  # fmt: skip
        train_curve = client.get_metric_history(child.info.run_id, "curve/train_roc_auc")
        assert len(train_curve) == len(points)


def test_the_test_metrics_come_with_their_intervals(tracked):
    metrics = parent_run(tracked).data.metrics
    evaluation = json.loads(read_output(tracked, "evaluate", "metrics.json"))
    for name, value in evaluation["metrics"].items():
        assert metrics[f"test_{name}"] == pytest.approx(value)
        low, high = evaluation["intervals"][name]
        assert metrics[f"test_{name}_ci_low"] == pytest.approx(low)
        assert metrics[f"test_{name}_ci_high"] == pytest.approx(high)
        assert low <= value <= high
    assert metrics["test_roc_auc"] == tracked["summary"]["metrics"]["roc_auc"]


def test_the_reports_and_plots_are_artifacts(tracked, tmp_path):
    run = parent_run(tracked)
    logged = artifacts(tracked["client"], run.info.run_id)
    for stage in ("explore", "features", "train", "evaluate"):
        assert f"{stage}/report.html" in logged
    plots = {p for p in manifest(tracked, "evaluate").outputs if p.startswith("plots/")}
    assert plots and {f"evaluate/{p}" for p in plots} <= set(logged)
    assert "explore/notebook.ipynb" in logged and "train/leaderboard.json" in logged
    assert not [path for path in logged if path.endswith(".parquet") and "trials" not in path]
    # The bytes are the committed output's.
    local = tracked["client"].download_artifacts(run.info.run_id, "evaluate/report.html",
                                                 str(tmp_path))  # fmt: skip
    expected = manifest(tracked, "evaluate").outputs["report.html"].sha256
    assert hashlib.sha256(Path(local).read_bytes()).hexdigest() == expected


def test_the_promoted_model_is_registered_with_the_same_alias(tracked, tmp_path):
    promotion = tracked["summary"]["metrics"]["promotion"]
    assert promotion["decision"] == "promoted", promotion
    client = tracked["client"]
    model = client.get_registered_model("cancer")
    assert set(model.aliases) == {"production"}
    mirrored = client.get_model_version_by_alias("cancer", "production")
    assert mirrored.tags["mlbatch.version"] == str(promotion["version"])
    assert mirrored.run_id == parent_run(tracked).info.run_id
    # The version's files as mlbatch registered them (native model, skops transformer).
    record = registry.version_record(tracked["root"], "cancer", promotion["version"])
    folder = Path(client.download_artifacts(mirrored.run_id, "model", str(tmp_path)))
    assert not [p for p in folder.rglob("*") if p.suffix in (".pkl", ".pickle")]
    for path, expected in record["files"].items():
        assert hashlib.sha256((folder / path).read_bytes()).hexdigest() == expected["sha256"]


def test_mirroring_again_logs_nothing_twice(tracked):
    client, before = tracked["client"], parent_run(tracked)
    counts = {
        "children": len(children(tracked, before)),
        "versions": len(client.search_model_versions("name = 'cancer'")),
        "history": len(client.get_metric_history(before.info.run_id, "test_roc_auc")),
        "artifacts": artifacts(client, before.info.run_id),
    }
    result = mlbatch("mlflow-sync", tracked["summary"]["run_id"], "--storage", tracked["root"],
                     "--uri", client.tracking_uri, "-o", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert run_json(result)["errors"] == 0
    after = parent_run(tracked)  # still exactly one
    assert after.info.status == "FINISHED"
    assert counts == {
        "children": len(children(tracked, after)),
        "versions": len(client.search_model_versions("name = 'cancer'")),
        "history": len(client.get_metric_history(after.info.run_id, "test_roc_auc")),
        "artifacts": artifacts(client, after.info.run_id),
    }


def test_a_server_that_is_down_never_fails_the_run(tracked):
    """The same table again (its stages from the cache), the server named by the spec
    this time, on a port nothing listens on: the run succeeds, one warning, counted."""
    closed = f"http://127.0.0.1:{free_port()}"
    result = mlbatch(
        "run", "--data", str(cancer_csv(tracked["folder"])), "--target", "target",
        "--storage", tracked["root"], "--output", "json", *SMALL,
        "--set", f"tracking.mlflow.uri={closed}", env={"MLFLOW_TRACKING_URI": ""},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = run_json(result)
    assert summary["state"] == "succeeded"
    state = runs.read_state(RunLayout(tracked["root"], summary["run_id"]))
    assert state["mlflow"]["uri"] == closed and state["mlflow"]["errors"] >= 1
    assert "Connection refused" in state["mlflow"]["last_error"]
    warnings = [line for line in result.stderr.splitlines() if "MLflow export" in line]
    assert len(warnings) == 1, result.stderr
    assert summary["mlflow"]["errors"] == state["mlflow"]["errors"]
