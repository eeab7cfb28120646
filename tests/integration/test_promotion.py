"""The registry end to end through the CLI, as a user drives it: runs with a gate register
and promote only better models, a failed gate rejects the run, `mlbatch models`, `promote`,
and `mlbatch predict` on a CSV the pipeline never saw (no target column), then a scoring
pipeline (etl -> predict) with the production model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pipeline_checks import mlbatch, run_json
from sklearn.metrics import roc_auc_score
from small_tables import QUICK

from mlbatch import storage
from mlbatch.manifest import load_manifest
from mlbatch.runs import RunLayout

pytestmark = pytest.mark.slow
FAST_EVALUATION = ["--set", "evaluate.bootstrap=50", "--set", "evaluate.permutation_repeats=1"]
WEAK = ["--set", "features.drop=[signal]"]  # the column that carries most of the signal


def accounts(rows: int, seed: int) -> pd.DataFrame:
    """Accounts that churn mostly by `signal`, a little by `usage` and `plan`."""
    rng = np.random.default_rng(seed)
    signal, usage = rng.normal(size=rows), rng.gamma(2.0, 10.0, rows)
    plan = rng.choice(["free", "pro", "team"], rows)
    # signal alone: ROC AUC about 0.77, below what explore flags as a suspected leak
    score = signal + (usage - 20) / 12 + (plan == "pro") * 0.5 + rng.normal(0, 0.8, rows)
    return pd.DataFrame({"account": np.arange(rows) + 10_000, "signal": signal, "usage": usage,
                         "plan": plan, "churned": score > 0})  # fmt: skip


@pytest.fixture(scope="module")
def flow(tmp_path_factory) -> dict:
    """Three runs of one table: weak (v1, promoted), full (v2, promoted), weak again (v3, kept)."""
    folder = tmp_path_factory.mktemp("promotion")
    table = accounts(2400, seed=1)
    table.iloc[:2000].to_csv(folder / "train.csv", index=False)
    table.iloc[2000:].drop(columns=["churned"]).to_csv(folder / "unseen.csv", index=False)
    root = storage.resolve_uri(str(folder / "store"))

    def run(*extra: str) -> tuple[int, dict]:
        result = mlbatch(
            "run", "--data", str(folder / "train.csv"), "--target", "churned", "--storage", root,
            "--set", "id_columns=[account]", "--set", "evaluate.gates=[roc_auc >= 0.55]",
            "--output", "json", *QUICK, *FAST_EVALUATION, *extra,
        )  # fmt: skip
        return result.returncode, run_json(result)

    runs = {"weak": run(*WEAK), "full": run()}
    # The same weak model again (features and train come from the cache), evaluated anew.
    runs["weak again"] = run(*WEAK, "--set", "evaluate.confidence=0.9")
    return {"root": root, "folder": folder, "truth": table.iloc[2000:], "runs": runs}


def promotion(flow: dict, name: str) -> dict:
    code, summary = flow["runs"][name]
    assert code == 0, summary
    return summary["metrics"]["promotion"]


def test_the_first_model_is_promoted_then_only_a_better_one(flow):
    first, better, worse = (promotion(flow, n) for n in ("weak", "full", "weak again"))
    assert (first["decision"], first["version"]) == ("promoted", 1)
    assert (better["decision"], better["version"], better["champion_version"]) == (
        "promoted", 2, 1,
    )  # fmt: skip
    assert better["candidate"] > better["champion"]  # v1 scored on the second run's test rows
    assert (worse["decision"], worse["version"], worse["champion_version"]) == ("kept", 3, 2)
    assert worse["champion"] > worse["candidate"]
    listed = run_json(mlbatch("models", "--storage", flow["root"], "-o", "json"))
    assert listed == [{"name": "train", "versions": [1, 2, 3], "aliases": {"production": 2}}]


def test_a_failed_gate_rejects_the_run_and_a_resume_does_not_evaluate_again(flow):
    result = mlbatch(
        "run", "--data", str(flow["folder"] / "train.csv"), "--target", "churned",
        "--storage", flow["root"], "--set", "id_columns=[account]",
        "--set", "evaluate.gates=[roc_auc >= 0.999]", "--output", "json", *QUICK,
        *FAST_EVALUATION, *WEAK,
    )  # fmt: skip
    summary = run_json(result)
    assert result.returncode == 3 and summary["state"] == "rejected"
    assert summary["metrics"]["gate_failures"].startswith("roc_auc >= 0.999 (measured 0.")
    assert summary["metrics"]["promotion"]["decision"] == "not registered"
    layout = RunLayout(flow["root"], summary["run_id"])
    committed = load_manifest(layout, "evaluate")[0]
    assert committed.status == "rejected"

    resumed = mlbatch("resume", summary["run_id"], "--storage", flow["root"], "-o", "json")
    assert resumed.returncode == 3 and run_json(resumed)["state"] == "rejected"
    assert load_manifest(layout, "evaluate")[0].attempt == committed.attempt
    shown = run_json(mlbatch("models", "show", "train", "--storage", flow["root"], "-o", "json"))
    assert [v["version"] for v in shown["versions"]] == [1, 2, 3]  # nothing registered


def test_promote_by_hand_and_show_the_alias_history(flow):
    root = flow["root"]
    done = mlbatch("promote", "train:1", "--alias", "production", "--reason", "rollback",
                   "--storage", root)  # fmt: skip
    assert done.returncode == 0 and "train@production → version 1 (was 2)" in done.stdout
    shown = run_json(mlbatch("models", "show", "train@production", "--storage", root, "-o", "json"))
    assert shown["version"] == 1 and shown["run_id"] == flow["runs"]["weak"][1]["run_id"]
    history = shown["alias"]["history"]
    assert [(h["version"], h["previous"]) for h in history] == [(1, None), (2, 1), (1, 2)]
    assert history[-1]["reason"] == "rollback"
    assert shown["lineage"]["run_uri"].endswith(shown["run_id"])
    table = mlbatch("models", "show", "train:2", "--storage", root)
    assert table.returncode == 0 and "roc_auc" in table.stdout
    missing = mlbatch("promote", "train:9", "--alias", "production", "--storage", root)
    assert missing.returncode == 2 and "no version 9" in missing.stderr
    # back to the better model for the tests that follow
    assert mlbatch("promote", "train:2", "--alias", "production", "--storage", root).returncode == 0


def test_predict_a_csv_never_seen_before(flow):
    folder, root = flow["folder"], flow["root"]
    run_id = flow["runs"]["full"][1]["run_id"]
    result = mlbatch(
        "predict", "--model", run_id, "--input", str(folder / "unseen.csv"),
        "--output", str(folder / "preds.parquet"), "--storage", root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"400 rows scored by {run_id}" in result.stdout
    described = json.loads(pq.read_schema(folder / "preds.parquet").metadata[b"mlbatch"])
    assert described["positive_class"] is True and described["model"]["run_id"] == run_id
    predictions = pd.read_parquet(folder / "preds.parquet")
    assert list(predictions.columns) == ["account", "prediction", "probability"]
    truth = flow["truth"]
    assert predictions["account"].tolist() == truth["account"].tolist()
    assert roc_auc_score(truth["churned"], predictions["probability"]) > 0.85

    as_csv = mlbatch("predict", "--model", "train@production", "--input",
                     str(folder / "unseen.csv"), "--output", str(folder / "preds.csv"),
                     "--storage", root)  # fmt: skip
    assert as_csv.returncode == 0 and "probability = P(churned = True)" in as_csv.stdout
    pd.testing.assert_frame_equal(pd.read_csv(folder / "preds.csv"), predictions, atol=1e-9)

    pd.read_csv(folder / "unseen.csv").drop(columns=["usage"]).to_csv(folder / "bad.csv")
    bad = mlbatch("predict", "--model", run_id, "--input", str(folder / "bad.csv"),
                  "--output", str(folder / "bad.parquet"), "--storage", root)  # fmt: skip
    assert bad.returncode == 2 and "the model needs: usage" in bad.stderr


def test_a_scoring_pipeline_runs_etl_then_predict(flow):
    folder, root = flow["folder"], flow["root"]
    # New rows have no label: etl neither needs the target nor drops rows for it.
    flow["truth"].drop(columns=["churned"]).to_csv(folder / "batch.csv", index=False)
    spec = {
        "name": "churn-scoring", "target": "churned", "id_columns": ["account"],
        "etl": {"sources": {"batch": {"uri": str(folder / "batch.csv")}}},
        "predict": {"model": "train@production", "output": "scored/churn.parquet"},
    }  # fmt: skip
    (folder / "scoring.yaml").write_text(json.dumps(spec))
    result = mlbatch("run", str(folder / "scoring.yaml"), "--storage", root, "-o", "json")
    summary = run_json(result)
    assert result.returncode == 0, result.stderr
    assert set(summary["stages"]) == {"etl", "predict"}
    scored = pd.read_parquet(Path(storage.local_path(root)) / "scored/churn.parquet")
    assert list(scored.columns) == ["account", "prediction", "probability"] and len(scored) == 400
