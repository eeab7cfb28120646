"""The evaluate stage: metrics, plots, the report, loading train's model, the stage itself."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from features_fixture import (
    TASKS,
    attempt_folder,
    commit_attempt,
    committed_features,
    write_features_outputs,
)
from sklearn.metrics import roc_auc_score

from mlbatch import storage
from mlbatch.manifest import load_manifest
from mlbatch.tasks import TUNING_METRIC
from mlbatch_jobs.evaluate.metrics import compute_metrics
from mlbatch_jobs.evaluate.model import load_model, predict, read_model_info
from mlbatch_jobs.evaluate.plots import task_plots
from mlbatch_jobs.evaluate.report import render_report
from mlbatch_jobs.train.data import training_data
from mlbatch_jobs.train.models import FAMILIES
from mlbatch_jobs.train.search import SearchResult
from mlbatch_jobs.train.stage import write_outputs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_binary_metrics_on_known_inputs():
    y = np.array([0, 0, 1, 1])
    probabilities = np.array([0.1, 0.4, 0.35, 0.8])
    metrics = compute_metrics("binary", y, probabilities, 2)
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert metrics["accuracy"] == pytest.approx(0.75)  # 0.35 falls below the 0.5 threshold
    expected = -np.mean(np.log([0.9, 0.6, 0.35, 0.8]))
    assert metrics["log_loss"] == pytest.approx(expected)


def test_multiclass_metrics_on_known_inputs():
    y = np.array([0, 1, 2, 2])
    probabilities = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.6, 0.3], [0.1, 0.1, 0.8]])
    metrics = compute_metrics("multiclass", y, probabilities, 3)
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["log_loss"] == pytest.approx(-np.mean(np.log([0.7, 0.5, 0.3, 0.8])))
    # one-vs-rest AUCs: class 0 1.0, class 1 2/3, class 2 3.5/4 (a tie counts half)
    assert metrics["roc_auc"] == pytest.approx((1 + 2 / 3 + 0.875) / 3)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, probabilities, multi_class="ovr"))


def test_multiclass_auc_averages_the_classes_present():
    y = np.array([0, 0, 1, 1])  # class 2 missing from a small test split
    probabilities = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1]])
    metrics = compute_metrics("multiclass", y, probabilities, 3)
    assert metrics["roc_auc"] == pytest.approx(1.0)
    assert metrics["accuracy"] == pytest.approx(1.0)


def test_regression_metrics_on_known_inputs():
    metrics = compute_metrics("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]), 0)
    assert metrics == pytest.approx({"rmse": np.sqrt(1 / 3), "mae": 1 / 3, "r2": 0.5})


def test_binary_auc_is_left_out_when_the_test_rows_hold_one_class():
    metrics = compute_metrics("binary", np.array([1, 1]), np.array([0.7, 0.2]), 2)
    assert "roc_auc" not in metrics and metrics["accuracy"] == 0.5


@pytest.mark.parametrize(
    ("task", "plot_name"),
    [("binary", "roc_curve"), ("multiclass", "confusion_matrix"),
     ("regression", "predicted_vs_actual")],
)  # fmt: skip
def test_each_task_gets_its_plot(task, plot_name):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3 if task == "multiclass" else 2, 50)
    predictions = {
        "binary": rng.random(50),
        "multiclass": rng.dirichlet([1, 1, 1], 50),
        "regression": y + rng.normal(0, 0.3, 50),
    }[task]
    plots = task_plots(task, y, predictions, ["a", "b", "c"])
    assert [p.name for p in plots] == [plot_name]
    assert plots[0].png.startswith(PNG_SIGNATURE)


def test_report_embeds_plots_and_escapes_text():
    plot = task_plots("binary", np.array([0, 1, 0, 1]), np.array([0.2, 0.7, 0.4, 0.9]), None)[0]
    html = render_report(
        title="run <x>", summary={"model": "xgboost"}, metrics={"roc_auc": 0.91234},
        rows={"train": 7, "test": 3}, params={"objective": "binary:logistic"}, plots=[plot],
    )  # fmt: skip
    assert html.startswith("<!doctype html>")
    assert "<title>run &lt;x&gt;</title>" in html
    assert "0.9123" in html and "binary:logistic" in html
    encoded = html.split("data:image/png;base64,", 1)[1].split('"', 1)[0]
    assert base64.b64decode(encoded) == plot.png
    assert "http" not in html  # self-contained: nothing to fetch


def train_attempt(folder, features_folder, task: str, family: str) -> dict:
    """Fit one model with train's own code and write train's outputs: what evaluate reads."""
    schema = json.loads((features_folder / "feature_schema.json").read_text())
    splits = {
        n: pd.read_parquet(features_folder / "splits" / f"{n}.parquet") for n in ("train", "valid")
    }
    data = training_data(schema, splits["train"], splits["valid"])
    model = FAMILIES[family]
    config = {"learning_rate": 0.2}
    fit = model.fit(config, data, threads=1, seed=0)
    metric, mode = TUNING_METRIC[task]
    best = {
        "family": family, "config": config, "status": "ok", metric: 0.5,
        "best_iteration": fit.best_iteration, "rounds": fit.rounds, "trials": 1, "completed": 1,
    }  # fmt: skip
    result = SearchResult(metric, mode, trials=[best], leaderboard=[best], wall_s=0.0)
    write_outputs(folder, result, fit, data, schema, score=0.5)
    return {"data": data, "expected": model.predict(fit, data.x_valid)}


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_evaluate_loads_train_models_natively(tmp_path, family, task):
    features = tmp_path / "features"
    write_features_outputs(features, task)
    trained = train_attempt(tmp_path / "train", features, task, family)

    info = read_model_info(tmp_path / "train" / "model" / "model_info.json")
    model = load_model(info, tmp_path / "train" / "model" / info["model_file"])
    assert model.family == family
    predictions = predict(model, trained["data"].x_valid)
    np.testing.assert_allclose(predictions, trained["expected"], rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(("task", "family"), [("binary", "xgboost"), ("multiclass", "lightgbm"),
                                              ("regression", "xgboost")])  # fmt: skip
def test_evaluate_stage_commits_metrics_and_report(tmp_path, task, family):
    layout = committed_features(tmp_path / "store", task)
    train_attempt(
        attempt_folder(layout, "train", "1-bbbb"), attempt_folder(layout, "features", "1-aaaa"),
        task, family,
    )  # fmt: skip
    commit_attempt(layout, "train", "1-bbbb")
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    env.pop("MPLCONFIGDIR", None)
    done = subprocess.run(
        [sys.executable, "-m", "mlbatch_jobs.evaluate", "--run", layout.uri, "--attempt", "1-abcd"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    manifest, _ = load_manifest(layout, "evaluate")
    plot = {"binary": "roc_curve", "multiclass": "confusion_matrix",
            "regression": "predicted_vs_actual"}[task]  # fmt: skip
    assert set(manifest.outputs) == {"metrics.json", "report.html", f"plots/{plot}.png"}
    assert {i.uri for i in manifest.inputs} == {
        layout.manifest_uri("train"),
        layout.manifest_uri("features"),
    }
    names = {"binary": {"roc_auc", "log_loss", "accuracy"},
             "multiclass": {"roc_auc", "log_loss", "accuracy"},
             "regression": {"rmse", "mae", "r2"}}[task]  # fmt: skip
    assert set(manifest.metrics) == names | {"model_family", "test_rows"}
    assert manifest.metrics["model_family"] == family and manifest.metrics["test_rows"] == 60
    metric, floor = {
        "binary": ("roc_auc", 0.8), "multiclass": ("accuracy", 0.6), "regression": ("r2", 0.6)
    }[task]  # fmt: skip
    assert manifest.metrics[metric] > floor

    attempt = storage.local_path(layout.attempt_uri("evaluate", "1-abcd"))
    saved = json.loads((attempt / "metrics.json").read_text())
    assert saved["metrics"] == {k: manifest.metrics[k] for k in names}
    assert saved["rows"] == {"train": 420, "valid": 120, "test": 60}
    html = (attempt / "report.html").read_text()
    assert "data:image/png;base64," in html and family in html
    assert list(home.iterdir()) == []  # matplotlib kept its cache in scratch space
