"""The train stage as a program: committed outputs, CV folds, a refit on train + valid,
the report, progress in the log, and a required GPU refused before any trial."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from features_fixture import committed_features  # noqa: E402

from mlbatch import storage  # noqa: E402
from mlbatch.manifest import load_manifest  # noqa: E402

pytestmark = pytest.mark.slow


def run_train(layout, home: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    home.mkdir(exist_ok=True)
    environment = {**os.environ, "HOME": str(home), **(env or {})}
    environment.pop("MLBATCH_CODE_VERSION", None)
    return subprocess.run(
        [sys.executable, "-m", "mlbatch_jobs.train", "--run", layout.uri, "--attempt", "1-abcd"],
        env=environment, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_stage_scores_every_trial_on_the_folds_refits_and_commits(tmp_path):
    train = {"models": ["linear", "xgboost"], "num_samples": 2, "time_budget_s": 40,
             "refit_on_train_valid": True}  # fmt: skip
    layout = committed_features(tmp_path / "store", "binary", train=train, folds=3)
    done = run_train(layout, tmp_path / "home")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    manifest, _ = load_manifest(layout, "train")
    family = manifest.metrics["best_family"]
    files = {"linear": "model.skops", "xgboost": "model.json"}
    attempt = storage.local_path(layout.attempt_uri("train", "1-abcd"))
    leaderboard = json.loads((attempt / "leaderboard.json").read_text())
    saved = leaderboard["final"]
    if manifest.metrics["model"] == "ensemble":  # members in their own formats, weighed
        members = [f"model/members/{n}-{m['family']}/{files[m['family']]}"
                   for n, m in enumerate(saved["members"])]  # fmt: skip
        model_files = {"model/ensemble.json", *members}
        assert saved["ensemble_selection"]["score"] >= saved["ensemble_selection"]["best_single"]
    else:
        model_files = {f"model/{files[family]}"}
    assert set(manifest.outputs) == {*model_files, "model/model_info.json", "trials.parquet",
                                     "leaderboard.json", "report.html"}  # fmt: skip
    assert saved["refit"] and all(r["rows"] == 540 for r in saved["refit"])
    assert 0 < saved["threshold"]["value"] < 1 and "before the refit" in saved["threshold"]["rule"]
    assert manifest.metrics["tuning_metric"] == "roc_auc"
    assert 0.85 < manifest.metrics["cv_roc_auc"] <= 1 and "test_roc_auc" in manifest.metrics

    assert leaderboard["selection"] == "cv" and leaderboard["best"] == family
    assert all(entry["cv"]["folds"] == 3 and entry["test"] for entry in leaderboard["families"]), (
        leaderboard["families"], done.stdout[-3000:])  # fmt: skip
    info = json.loads((attempt / "model" / "model_info.json").read_text())
    assert info["refit"] and info["tuning_metric"]["selection"] == "cv"
    assert info["threshold"] == saved["threshold"]
    assert len(info["tuning_metric"]["cv"]["scores"]) == 3
    trials = pq.read_table(attempt / "trials.parquet").to_pandas()
    assert set(trials["family"]) == {"linear", "xgboost"} and "param_C" in trials
    report = (attempt / "report.html").read_text()
    assert "Leaderboard" in report and "data:image/png;base64," in report
    assert "[train] progress" in done.stdout
    tune_state = storage.local_path(layout.scratch_uri("train", "1-abcd"))
    assert (tune_state / "xgboost").is_dir()
    assert list((tmp_path / "home").iterdir()) == []  # Ray kept to scratch space


def test_finalists_are_scored_on_the_other_folds_and_the_model_chosen_there(tmp_path):
    train = {"models": ["linear", "lightgbm"], "time_budget_s": 30, "cv": "finalists"}
    layout = committed_features(tmp_path / "store", "binary", train=train, folds=3)
    done = run_train(layout, tmp_path / "home")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    manifest, _ = load_manifest(layout, "train")
    attempt = storage.local_path(layout.attempt_uri("train", "1-abcd"))
    leaderboard = json.loads((attempt / "leaderboard.json").read_text())
    trials = pq.read_table(attempt / "trials.parquet").to_pandas()
    # Trials fit the main split alone: the search keeps its trial count.
    assert leaderboard["selection"] == "valid" and trials["cv_scores"].isna().all()
    portfolio = trials[(trials["origin"] == "portfolio") & (trials["status"] == "ok")]
    assert set(portfolio["family"]) == {"linear", "lightgbm"}, trials[["family", "origin"]]

    finalists = leaderboard["final"]["finalists"]
    listing = json.loads(storage.local_path(
        layout.attempt_uri("features", "1-aaaa")).joinpath("folds.json").read_text())
    others = listing["folds"][:-1]  # the last fold is the main train/valid split
    assert finalists["folds"] == 2 and finalists["rows"] == sum(f["valid_rows"] for f in others)
    scored = {entry["trial_id"] for entry in finalists["scored"]}
    assert set(portfolio["trial_id"]) <= scored | set(finalists["left_out"])
    assert {entry["family"] for entry in finalists["scored"]} == {"linear", "lightgbm"}
    scores = [entry["score"] for entry in finalists["scored"]]
    assert scores == sorted(scores, reverse=True)  # best first: roc_auc
    lead = finalists["scored"][0]
    info = json.loads((attempt / "model" / "model_info.json").read_text())
    assert info["tuning_metric"]["selection"] == "finalists"
    assert info["tuning_metric"]["finalists"]["score"] == pytest.approx(lead["score"])
    assert manifest.metrics["finalists_roc_auc"] == pytest.approx(lead["score"], abs=1e-6)
    if info["ensemble"]:
        assert info["ensemble"]["rows"] == finalists["rows"]
        assert info["ensemble"]["score"] >= lead["score"]
    else:
        assert info["trial_id"] == lead["trial_id"]
    assert "out of fold" in info["threshold"]["rule"]
    assert all(r["rows"] == 540 for r in leaderboard["final"]["refit"])  # train + valid
    assert "[train] finalists: " in done.stdout and "scored on 2 more folds" in done.stdout
    assert "Chosen on the other 2 CV folds" in (attempt / "report.html").read_text()


def test_a_required_gpu_without_one_is_bad_input(tmp_path):
    train = {"models": ["xgboost"], "resources": {"gpu": "required"}}
    layout = committed_features(tmp_path / "store", "binary", train=train)
    done = run_train(layout, tmp_path / "home")
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    # the stage's log capture sends stderr through its stdout
    message = "train: train.resources.gpu is required, but the Ray cluster has no GPU"
    assert message in done.stdout + done.stderr
    assert "[train] searching" not in done.stdout
    assert load_manifest(layout, "train") is None
