"""MLflow tracking without a server: what a run folder becomes in MLflow's terms, which
server and experiment a run is mirrored to, and how failures are counted and warned about
(the export against a real server: tests/integration/test_mlflow.py)."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from mlbatch import mlflow_content, mlflow_tracking
from mlbatch.errors import BadInput
from mlbatch.runs import RunLayout
from mlbatch.spec import load_spec, validate_spec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flights.yaml"
MLFLOW_NAME = re.compile(r"^[/\w.\- :]*$")  # what MLflow accepts (mlflow.utils.validation)
LAYOUT = RunLayout("file:///tmp/store", "20261203-120000-abcdef")


def spec_with(**tracking):
    document = {"name": "churn", "target": "y", "etl": {"sources": {"t": {"uri": "t.csv"}}}}
    return validate_spec({**document, **({"tracking": tracking} if tracking else {})})


def test_the_spec_becomes_parameters_by_dotted_path_without_tracking_or_execution():
    spec = load_spec(EXAMPLE, ["tracking.mlflow.uri=http://mlflow:5000"])
    params = mlflow_content.spec_params(spec.model_dump(mode="json"))
    assert params["name"] == "flights-delay" and params["target"] == "delayed"
    assert params["etl.sources.flights.uri"] == "raw/flights/flights.csv"
    assert params["train.models"] == '["linear", "xgboost", "lightgbm"]'
    assert params["train.time_budget_s"] == "240"
    assert params["evaluate.gates"] == '["roc_auc >= 0.7"]'  # as the spec parsed it
    assert not [k for k in params if k.split(".")[0] in ("tracking", "execution", "description")]
    assert all(MLFLOW_NAME.match(k) and len(k) <= 250 for k in params)
    assert all(len(v) <= mlflow_content.PARAM_VALUE_LIMIT for v in params.values())


def test_names_keep_only_what_mlflow_accepts():
    assert mlflow_content.name("sepal length (cm)/x") == "sepal length _cm__x"
    params = mlflow_content.spec_params({"features": {"columns": {"a(b)": {"kind": "x"}}}})
    assert params == {"features.columns.a_b_.kind": "x"}


def test_stage_numbers_and_the_test_metrics_with_their_intervals():
    metrics = {"roc_auc": 0.8, "log_loss": 0.4, "intervals": {"roc_auc": [0.7, 0.9]},
               "test_rows": 57, "decision_threshold": {"value": 0.4, "rule": "f1"},
               "gates": [{"passed": True}], "flag": True, "nan": float("nan")}  # fmt: skip
    evaluation = {"metrics": {"roc_auc": 0.8, "log_loss": 0.4},
                  "intervals": {"roc_auc": [0.7, 0.9], "log_loss": [0.35, 0.45]}}  # fmt: skip
    profile = {"wall_s": 3.0, "cpu_s": 2.5, "peak_rss_mb": 300.0}
    assert mlflow_content.stage_metrics("evaluate", metrics, profile, evaluation) == {
        "evaluate.test_rows": 57.0, "evaluate.decision_threshold.value": 0.4,
        "evaluate.profile.wall_s": 3.0, "evaluate.profile.cpu_s": 2.5,
        "evaluate.profile.peak_rss_mb": 300.0,
        "test_roc_auc": 0.8, "test_roc_auc_ci_low": 0.7, "test_roc_auc_ci_high": 0.9,
        "test_log_loss": 0.4, "test_log_loss_ci_low": 0.35, "test_log_loss_ci_high": 0.45,
    }  # fmt: skip


def trials_table() -> pa.Table:
    """trials.parquet as train writes it (jobs/train/tracking.py): two trials."""
    rows = {
        "family": ["lightgbm", "lightgbm"], "trial_id": ["a1", "b2"],
        "status": ["ok", "early_stopped"], "roc_auc": [0.91, 0.85], "seconds": [1.5, 0.5],
        "valid": [0.9, None], "cv_scores": [[0.9, 0.92], None], "rounds": [30.0, 10.0],
        "device": ["cpu", "cpu"], "curve_rounds": [[10, 20, 30], None],
        "curve_train": [[0.8, 0.9, 0.95], None], "curve_valid": [[0.7, 0.85, float("nan")], None],
        "config": [json.dumps({"learning_rate": 0.05, "num_leaves": 31}),
                   json.dumps({"learning_rate": 0.2, "num_leaves": 7})],
        "param_learning_rate": [0.05, 0.2], "param_num_leaves": [31.0, 7.0],
    }  # fmt: skip
    table = pa.table(rows)
    return table.replace_schema_metadata({"mlbatch": json.dumps({"metric": "roc_auc"})})


def test_each_trial_is_a_nested_run_with_its_hyperparameters_and_curves():
    first, second = mlflow_content.trials(trials_table())
    assert first.key == "lightgbm/a1" and first.run_name == "lightgbm-a1"
    assert first.params == {"family": "lightgbm", "learning_rate": "0.05", "num_leaves": "31"}
    assert first.metrics == {"roc_auc": 0.91, "seconds": 1.5, "valid_roc_auc": 0.9,
                             "rounds": 30.0, "cv_roc_auc_std": pytest.approx(0.01)}  # fmt: skip
    assert first.curves == {"curve/valid_roc_auc": [(10, 0.7), (20, 0.85)],  # NaN left out
                            "curve/train_roc_auc": [(10, 0.8), (20, 0.9), (30, 0.95)]}  # fmt: skip
    assert first.tags == {"mlbatch.trial": "lightgbm/a1", "mlbatch.status": "ok",
                          "mlbatch.device": "cpu"}  # fmt: skip
    assert second.curves == {} and second.tags["mlbatch.status"] == "early_stopped"


def test_only_reports_plots_and_small_records_are_artifacts():
    outputs = ["report.html", "metrics.json", "plots/roc_curve.png", "plots/pr_curve.png",
               "promotion.json", "splits/test.parquet"]  # fmt: skip
    assert mlflow_content.stage_artifacts("evaluate", outputs) == [
        "metrics.json", "plots/pr_curve.png", "plots/roc_curve.png", "promotion.json",
        "report.html",
    ]  # fmt: skip
    train = ["model/model.txt", "model/model_info.json", "trials.parquet", "report.html"]
    assert mlflow_content.stage_artifacts("train", train) == [
        "model/model_info.json", "report.html", "trials.parquet",
    ]  # fmt: skip


def test_the_server_comes_from_the_spec_then_the_environment(monkeypatch):
    monkeypatch.delenv(mlflow_tracking.URI_ENV, raising=False)
    assert mlflow_tracking.for_run(LAYOUT, spec_with()) is None
    monkeypatch.setenv(mlflow_tracking.URI_ENV, "http://env:5000")
    tracking = mlflow_tracking.for_run(LAYOUT, spec_with())
    assert (tracking.export.uri, tracking.export.experiment) == ("http://env:5000", "churn")
    tracking = mlflow_tracking.for_run(
        LAYOUT, spec_with(mlflow={"uri": "http://spec:5000", "experiment": "team"})
    )
    assert (tracking.export.uri, tracking.export.experiment) == ("http://spec:5000", "team")
    off = spec_with(mlflow={"enabled": False})
    assert mlflow_tracking.for_run(LAYOUT, off) is None
    assert mlflow_tracking.for_run(LAYOUT, off, uri="http://cli:5000").export.uri == (
        "http://cli:5000"
    )


def test_a_password_in_the_spec_is_refused_and_never_shown():
    with pytest.raises(BadInput, match="MLFLOW_TRACKING_PASSWORD"):
        spec_with(mlflow={"uri": "https://me:secret@mlflow.example:443"})
    assert mlflow_tracking.redacted("https://me:secret@mlflow:8443/x") == "https://mlflow:8443/x"
    assert mlflow_tracking.redacted("http://mlflow:5000") == "http://mlflow:5000"


class FailingExport:
    """An export that fails until told otherwise, and records the calls it got."""

    def __init__(self, uri: str = "http://me:secret@mlflow:5000"):
        self.uri, self.experiment_id, self.run_id = uri, "1", "abc"
        self.calls: list[bool] = []
        self.fail = True
        self.release = threading.Event()
        self.release.set()

    def sync(self, view: dict, *, final: bool) -> None:
        self.calls.append(final)
        self.release.wait()
        if self.fail:
            raise ConnectionError(f"{self.uri}: connection refused")


STATE = {"created": 1.0, "stages": {"etl": {}, "train": {}}, "state": "running"}


def settled(tracking: mlflow_tracking.MlflowTracking, calls: int) -> None:
    """Wait for the worker to have taken `calls` syncs (the queue is drained in order)."""
    for _ in range(500):
        if len(tracking.export.calls) >= calls and tracking._queue.empty():
            threading.Event().wait(0.05)
            return
        threading.Event().wait(0.01)
    raise AssertionError("the worker did not take the syncs")


def test_a_failure_warns_once_counts_and_waits_for_the_runs_end(capsys):
    export = FailingExport()
    tracking = mlflow_tracking.MlflowTracking(export)
    tracking.sync(STATE)
    settled(tracking, 1)
    tracking.sync(STATE)  # suspended after the failure: not tried again ...
    tracking.sync(STATE)
    tracking.sync({**STATE, "state": "succeeded"}, final=True)  # ... but at the end
    assert export.calls == [False, True]
    record = tracking.record()
    assert record["errors"] == 2 and "connection refused" in record["last_error"]
    assert "secret" not in json.dumps(record)
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 1 and "MLflow export to http://mlflow:5000 failed" in warnings[0]


def test_a_later_success_catches_up_and_records_the_mlflow_run():
    export = FailingExport(uri="http://mlflow:5000")
    tracking = mlflow_tracking.MlflowTracking(export)
    tracking.sync(STATE)
    settled(tracking, 1)
    export.fail = False
    tracking.sync({**STATE, "state": "succeeded"}, final=True)
    record = tracking.record()
    assert record["errors"] == 1 and record["run_id"] == "abc"
    assert record["url"] == "http://mlflow:5000/#/experiments/1/runs/abc"


def test_the_runs_end_waits_for_the_export_only_so_long():
    export = FailingExport()
    export.fail, export.release = False, threading.Event()  # hangs until released
    tracking = mlflow_tracking.MlflowTracking(export)
    tracking.sync({**STATE, "state": "succeeded"}, final=True, wait_s=0.2)
    record = tracking.record()
    assert record["errors"] == 1 and "still going after 0s" in record["last_error"]
    export.release.set()


class ParamsClient:
    """The one MlflowClient call _log_params makes."""

    def __init__(self):
        self.logged: dict[str, str] = {}

    def log_batch(self, run_id: str, params=()) -> None:
        assert len(params) <= mlflow_content.BATCH_PARAMS
        self.logged |= {param.key: param.value for param in params}


def test_a_resume_that_edited_the_spec_adds_the_new_values_under_the_revisions_name():
    from mlbatch.mlflow_export import MlflowExport

    first, client = ParamsClient(), ParamsClient()
    MlflowExport(LAYOUT, spec_with(), uri="", experiment="x")._log_params(first, {}, "spec.json")
    assert first.logged["train.time_budget_s"] != "600"
    edited = validate_spec({**spec_with().model_dump(mode="json"),
                            "train": {"time_budget_s": 600}})  # fmt: skip
    MlflowExport(LAYOUT, edited, uri="", experiment="x")._log_params(
        client, first.logged, "spec.1.json"
    )
    assert client.logged == {"spec.1.json/train.time_budget_s": "600"}
