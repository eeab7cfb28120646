"""The evaluate stage as a program on a run folder: outputs, manifest, registry, the report
in a real browser, and a failed gate (committed, rejected, exit 3, nothing registered)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from browser import check_page
from evaluate_fixture import model_run, run_stage_process

from mlbatch import registry, storage
from mlbatch.manifest import load_manifest
from mlbatch.spec.evaluate import TASK_METRICS

pytestmark = pytest.mark.slow
QUICK_EVALUATION = {"bootstrap": 50, "permutation_repeats": 1}
CLASSIFICATION_PLOTS = {"roc_curve", "pr_curve", "confusion_matrix", "calibration",
                        "score_distribution"}  # fmt: skip
COMMON_PLOTS = {"importance_gain", "importance_permutation", "tuning_trials"}


@pytest.mark.parametrize(("task", "family", "gate"), [
    ("binary", "lightgbm", "roc_auc >= 0.75"), ("multiclass", "xgboost", "accuracy > 0.5"),
    ("regression", "linear", "r2 >= 0.5"),
])  # fmt: skip
def test_evaluate_commits_metrics_plots_report_and_registers(tmp_path, task, family, gate):
    root = storage.resolve_uri(str(tmp_path / "store"))
    extra = {"evaluate": {**QUICK_EVALUATION, "gates": [gate]}}
    layout = model_run(root, task, family=family, extra=extra, name="demo")
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    env.pop("MPLCONFIGDIR", None)
    done = run_stage_process("evaluate", layout, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    manifest, _ = load_manifest(layout, "evaluate")
    plots = {p.removeprefix("plots/").removesuffix(".png") for p in manifest.outputs
             if p.startswith("plots/")}  # fmt: skip
    expected = COMMON_PLOTS | (
        {"predicted_vs_actual", "residuals"} if task == "regression" else CLASSIFICATION_PLOTS
    )
    if family != "linear":  # per-round curves: boosted trees (and forests), not linear models
        expected.add("learning_curves")
    assert plots == expected
    assert {"metrics.json", "report.html", "promotion.json"} <= set(manifest.outputs)
    names = TASK_METRICS[task]
    metrics = manifest.metrics
    assert set(names) <= set(metrics) and set(metrics["intervals"]) <= set(names)
    for name in ("r2", "rmse") if task == "regression" else ("roc_auc", "f1"):
        low, high = metrics["intervals"][name]
        assert low <= metrics[name] <= high
    assert metrics["gates"] == [{"gate": gate, "metric": gate.split()[0], "passed": True,
                                 "value": metrics[gate.split()[0]]}]  # fmt: skip
    if task == "binary":
        assert metrics["decision_threshold"]["rule"] == "best F1 on the validation split"
    assert metrics["promotion"]["decision"] == "promoted" and metrics["promotion"]["version"] == 1

    record = registry.version_record(layout.storage_uri, "demo", 1)
    assert record["run_id"] == layout.run_id and record["task"] == task
    assert {"transformer.skops", "feature_schema.json", "spec.json", "metrics.json",
            "model/model_info.json"} <= set(record["files"])  # fmt: skip
    assert record["lineage"]["manifests"][layout.manifest_uri("train")]

    attempt = storage.local_path(layout.attempt_uri("evaluate", "1-abcd"))
    saved = json.loads((attempt / "metrics.json").read_text())
    assert saved["metrics"] == {k: metrics[k] for k in saved["metrics"]}
    page = check_page(attempt / "report.html", screenshot=tmp_path / "report.png")
    assert page.title == "mlbatch evaluation: demo"
    assert len(page.images) == len(plots) and not page.broken_images and not page.console_errors
    assert list(home.iterdir()) == []  # matplotlib kept its cache in scratch space


def test_a_failed_gate_commits_rejects_and_registers_nothing(tmp_path: Path):
    root = storage.resolve_uri(str(tmp_path / "store"))
    extra = {"evaluate": {**QUICK_EVALUATION, "gates": ["roc_auc >= 0.999", "f1 > 0.1"]}}
    layout = model_run(root, "binary", extra=extra)
    done = run_stage_process("evaluate", layout)
    assert done.returncode == 3, done.stderr[-3000:]
    assert "quality gate failed: roc_auc >= 0.999 (measured 0." in done.stdout + done.stderr

    manifest, _ = load_manifest(layout, "evaluate")
    assert manifest.status == "rejected" and manifest.exit_code == 3
    assert manifest.metrics["gate_failures"].startswith("roc_auc >= 0.999")
    assert manifest.metrics["promotion"]["decision"] == "not registered"
    assert {"report.html", "metrics.json"} <= set(manifest.outputs)
    html = storage.read_bytes(storage.join(layout.attempt_uri("evaluate", "1-abcd"), "report.html"))
    assert b'<span class="failed">failed</span>' in html
    assert registry.model_names(root) == []
    # Committed: a second attempt (a resume, a retry) does not evaluate again.
    again = run_stage_process("evaluate", layout, attempt="2-abcd")
    assert again.returncode == 4 and "already committed" in again.stdout + again.stderr
