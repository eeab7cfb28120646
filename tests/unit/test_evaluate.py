"""The evaluate stage's numbers: metrics per task, the threshold, bootstrap intervals,
gates, feature importance, plots and the report."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from sklearn import metrics as sk

from mlbatch.spec import validate_spec
from mlbatch.spec.evaluate import EvaluateSpec, check_task_metrics, parse_gate
from mlbatch_jobs.evaluate.bootstrap import bootstrap_intervals
from mlbatch_jobs.evaluate.gates import check_gates, failures
from mlbatch_jobs.evaluate.importance import permutation_importance
from mlbatch_jobs.evaluate.metrics import best_f1_threshold, compute_metrics
from mlbatch_jobs.evaluate.plots import Plot, task_plots
from mlbatch_jobs.evaluate.report import render_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_binary_metrics_on_known_inputs():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    metrics = compute_metrics("binary", y, p, num_classes=2, threshold=0.5)
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert metrics["accuracy"] == pytest.approx(0.75)  # 0.35 falls below the threshold
    assert metrics["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.6, 0.35, 0.8])))
    assert metrics["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert (metrics["precision"], metrics["recall"]) == (1.0, 0.5)
    assert metrics["f1"] == pytest.approx(2 / 3)
    at_a_lower_threshold = compute_metrics("binary", y, p, num_classes=2, threshold=0.3)
    assert (at_a_lower_threshold["recall"], at_a_lower_threshold["precision"]) == (1.0, 2 / 3)


def test_binary_metrics_agree_with_scikit_learn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    p = np.clip(0.3 * y + rng.random(400) * 0.7, 0.001, 0.999)
    metrics = compute_metrics("binary", y, p, num_classes=2, threshold=0.6)
    predicted = (p >= 0.6).astype(int)
    assert metrics == pytest.approx({
        "roc_auc": sk.roc_auc_score(y, p), "log_loss": sk.log_loss(y, p),
        "accuracy": sk.accuracy_score(y, predicted), "pr_auc": sk.average_precision_score(y, p),
        "precision": sk.precision_score(y, predicted), "recall": sk.recall_score(y, predicted),
        "f1": sk.f1_score(y, predicted), "brier": sk.brier_score_loss(y, p),
    })  # fmt: skip


def test_multiclass_metrics_are_macro_averages_like_scikit_learn():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 300)
    p = rng.dirichlet([1, 1, 1], 300) + np.eye(3)[y] * 0.5
    p /= p.sum(axis=1, keepdims=True)
    metrics = compute_metrics("multiclass", y, p, num_classes=3)
    predicted = p.argmax(axis=1)
    onehot = np.eye(3)[y]
    assert metrics == pytest.approx({
        "roc_auc": sk.roc_auc_score(y, p, multi_class="ovr"), "log_loss": sk.log_loss(y, p),
        "accuracy": sk.accuracy_score(y, predicted),
        "pr_auc": sk.average_precision_score(onehot, p, average="macro"),
        "precision": sk.precision_score(y, predicted, average="macro"),
        "recall": sk.recall_score(y, predicted, average="macro"),
        "f1": sk.f1_score(y, predicted, average="macro"),
        "brier": np.mean(np.sum((p - onehot) ** 2, axis=1)),
    })  # fmt: skip


def test_multiclass_auc_averages_the_classes_present():
    y = np.array([0, 0, 1, 1])  # class 2 missing from a small test split
    p = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1]])
    metrics = compute_metrics("multiclass", y, p, num_classes=3)
    assert metrics["roc_auc"] == pytest.approx(1.0) and metrics["accuracy"] == 1.0


def test_regression_metrics_and_mape_only_where_defined():
    metrics = compute_metrics("regression", np.array([1.0, 2.0, 4.0]), np.array([1.0, 2.0, 5.0]),
                              num_classes=0)  # fmt: skip
    assert metrics == pytest.approx(
        {"rmse": np.sqrt(1 / 3), "mae": 1 / 3, "r2": 1 - 1 / (14 / 3), "mape": (1 / 4) / 3}
    )
    with_zero = compute_metrics("regression", np.array([0.0, 2.0]), np.array([1.0, 2.0]),
                                num_classes=0)  # fmt: skip
    assert "mape" not in with_zero and "rmse" in with_zero


def test_an_auc_over_one_class_is_left_out():
    metrics = compute_metrics("binary", np.array([1, 1]), np.array([0.7, 0.2]), num_classes=2)
    assert "roc_auc" not in metrics and "pr_auc" not in metrics and metrics["accuracy"] == 0.5


def test_the_threshold_maximises_f1():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.25 * y + rng.random(300) * 0.75, 0, 1)
    chosen = best_f1_threshold(y, p)
    f1_at = lambda t: sk.f1_score(y, (p >= t).astype(int))  # noqa: E731
    assert f1_at(chosen) == pytest.approx(max(f1_at(t) for t in np.unique(p)))
    assert best_f1_threshold(np.ones(5, int), p[:5]) is None


def test_bootstrap_intervals_bracket_the_estimate_and_shrink_with_rows():
    rng = np.random.default_rng(4)

    def width(rows: int) -> tuple[float, list[float], float]:
        y = rng.integers(0, 2, rows)
        p = np.clip(0.3 * y + rng.random(rows) * 0.7, 0, 1)
        estimate = compute_metrics("binary", y, p, num_classes=2)["roc_auc"]
        intervals = bootstrap_intervals(
            lambda i: compute_metrics("binary", y[i], p[i], num_classes=2), rows,
            samples=100, confidence=0.9, seed=0,
        )  # fmt: skip
        low, high = intervals["roc_auc"]
        return estimate, [low, high], high - low

    estimate, (low, high), small_width = width(100)
    assert low <= estimate <= high
    assert width(2000)[2] < small_width / 2
    assert bootstrap_intervals(lambda i: {"x": 1.0}, 10, samples=0, confidence=0.9, seed=0) == {}


def test_a_large_test_split_is_resampled_at_the_cap_and_its_intervals_scaled_to_the_split():
    rng = np.random.default_rng(5)
    rows = 20_000
    y = rng.integers(0, 2, rows)
    p = np.clip(0.3 * y + rng.random(rows) * 0.7, 0, 1)
    full = {"roc_auc": sk.roc_auc_score(y, p)}  # one metric: the test is the resampling's
    drawn_sizes: list[int] = []

    def metrics_of(i: np.ndarray) -> dict[str, float]:
        drawn_sizes.append(len(i))
        return {"roc_auc": sk.roc_auc_score(y[i], p[i])}

    def interval(**cap) -> list[float]:
        return bootstrap_intervals(metrics_of, rows, samples=200, confidence=0.9, seed=1,
                                   full=full, **cap)["roc_auc"]  # fmt: skip

    exact = interval()
    assert set(drawn_sizes) == {rows}
    drawn_sizes.clear()
    capped = interval(max_rows=2_000)
    assert set(drawn_sizes) == {2_000}  # the cost no longer grows with the split
    assert capped[0] < full["roc_auc"] < capped[1]
    # Ten times fewer rows per resample, yet the same width as resampling every row.
    width = lambda bounds: bounds[1] - bounds[0]  # noqa: E731
    assert width(capped) == pytest.approx(width(exact), rel=0.25)
    assert interval(max_rows=rows) == exact  # the cap at or above the split changes nothing
    with pytest.raises(ValueError, match="full split"):
        bootstrap_intervals(metrics_of, rows, samples=5, confidence=0.9, seed=1, max_rows=10)


def test_gates_parse_strictly_and_name_what_is_wrong():
    assert str(parse_gate("ROC_AUC>=0.72")) == "roc_auc >= 0.72"
    assert parse_gate("rmse < 30").passes(29.5) and not parse_gate("rmse < 30").passes(30)
    assert not parse_gate("r2 > 0").passes(None)  # undefined fails
    with pytest.raises(ValueError, match="unknown metric 'auc'; one of roc_auc"):
        parse_gate("auc >= 0.7")
    with pytest.raises(ValueError, match="is not `metric op number`"):
        parse_gate("roc_auc => 0.7")
    spec = EvaluateSpec(gates=["roc_auc >= 0.7", "rmse <= 30"])
    with pytest.raises(ValueError, match="binary models have no rmse"):
        check_task_metrics(spec, "binary")
    check_task_metrics(EvaluateSpec(gates=["f1 > 0.5"]), "multiclass")


def test_a_bad_gate_is_a_spec_error_naming_the_key():
    document = {"name": "x", "target": "y", "etl": {"sources": {"t": {"uri": "t.csv"}}},
                "evaluate": {"gates": ["roc_auc >= 0.7", "accuracy ~ 0.9"]}}  # fmt: skip
    with pytest.raises(Exception, match=r"evaluate\.gates\.1|evaluate.gates"):
        validate_spec(document, [], source="test")
    document["evaluate"] = {"registry": {"promote": "sometimes"}}
    with pytest.raises(Exception, match="promote"):
        validate_spec(document, [], source="test")


def test_gate_results_and_failure_line():
    gates = [parse_gate("roc_auc >= 0.9"), parse_gate("log_loss < 1"), parse_gate("pr_auc > 0.5")]
    results = check_gates(gates, {"roc_auc": 0.7412, "log_loss": 0.4})
    assert [r["passed"] for r in results] == [False, True, False]
    assert failures(results) == (
        "roc_auc >= 0.9 (measured 0.7412); pr_auc > 0.5 (measured undefined)"
    )


def test_permutation_importance_ranks_the_feature_the_score_uses():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(800, 3))
    y = (x[:, 1] > 0).astype(int)

    def score(rows: np.ndarray, labels: np.ndarray) -> float:
        return sk.roc_auc_score(labels, 1 / (1 + np.exp(-3 * rows[:, 1])))

    found = permutation_importance(score, x, y, features=["a", "b", "c"], higher_is_better=True,
                                   repeats=3, seed=0)  # fmt: skip
    assert list(found)[0] == "b" and found["b"]["mean"] > 0.3
    assert found["a"]["mean"] == found["c"]["mean"] == 0.0


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_each_task_gets_its_plots(task):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3 if task == "multiclass" else 2, 80)
    scores = {"binary": rng.random(80), "multiclass": rng.dirichlet([1, 1, 1], 80),
              "regression": y + rng.normal(0, 0.3, 80)}[task]  # fmt: skip
    plots = task_plots(task, y, scores, classes=["a", "b", "c"][: 3 if task == "multiclass" else 2],
                       threshold=0.4)  # fmt: skip
    expected = (
        ["predicted_vs_actual", "residuals"] if task == "regression"
        else ["roc_curve", "pr_curve", "confusion_matrix", "calibration", "score_distribution"]
    )  # fmt: skip
    assert [p.name for p in plots] == expected
    assert all(p.png.startswith(PNG_SIGNATURE) for p in plots)


def test_report_is_self_contained_and_escapes_what_it_did_not_write():
    plot = Plot("roc_curve", "ROC <curve>", PNG_SIGNATURE + b"rest")
    html = render_report(
        title="run <x>", summary={"model": "xgboost"},
        gates=[{"gate": "roc_auc >= 0.9", "value": 0.8, "passed": False}],
        decision={"decision": "not registered", "reason": "a <b> gate failed", "version": None},
        metrics={"roc_auc": 0.81234}, intervals={"roc_auc": [0.7, 0.9]},
        interval_note="95% bootstrap intervals",
        data={"Features": {'<span class="passed">': 3}}, excluded={"id": "identifier"},
        leaderboard={"metric": "roc_auc", "families": [{"family": "lightgbm", "roc_auc": 0.8}]},
        plots=[plot], params={"objective": "binary:logistic"},
    )  # fmt: skip
    assert html.startswith("<!doctype html>") and "<title>run &lt;x&gt;</title>" in html
    assert "0.8123" in html and "binary:logistic" in html and "a &lt;b&gt; gate" in html
    assert '<span class="failed">failed</span>' in html
    assert "&lt;span class=&quot;passed&quot;&gt;" in html  # data never becomes markup
    encoded = html.split("data:image/png;base64,", 1)[1].split('"', 1)[0]
    assert base64.b64decode(encoded) == plot.png
    assert "http" not in html and "<script" not in html  # nothing to fetch or run
