"""The flights demo measured against a plain baseline in the same script.

Runs the demo through the CLI (per-stage wall time, CPU and peak memory from the
manifests), then fits a plain XGBoost (default parameters, early stopping on the same
validation rows) on the features stage's own splits, and reports both test AUCs and the
ratio of the train stage's wall time to the baseline's. Results go to bench/results/.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from mlbatch import storage
from mlbatch.manifest import load_manifest, output_uri
from mlbatch.runs import RunLayout
from mlbatch.spec import STAGES

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def main() -> None:
    root = storage.resolve_uri(str(REPO / "bench" / "results" / "store"))
    cli = [sys.executable, "-m", "mlbatch.controller.cli"]
    subprocess.run([*cli, "demo-data", "--storage", root], check=True, capture_output=True)
    started = time.perf_counter()
    done = subprocess.run(
        [*cli, "run", str(REPO / "examples/flights.yaml"), "--storage", root, "-o", "json",
         *sys.argv[1:]],
        capture_output=True, text=True,
    )  # fmt: skip
    demo_wall = time.perf_counter() - started
    summary = json.loads(done.stdout)
    if done.returncode != 0:
        sys.exit(f"demo failed: {summary.get('message')}")
    layout = RunLayout(root, summary["run_id"])
    manifests = {s: load_manifest(layout, s)[0] for s in STAGES}

    def split(name: str) -> pd.DataFrame:
        return pd.read_parquet(
            storage.local_path(output_uri(layout, manifests["features"], f"splits/{name}.parquet"))
        )

    train, valid, test = split("train"), split("valid"), split("test")
    features = [c for c in train.columns if not c.startswith("__")]
    started = time.perf_counter()
    model = xgb.XGBClassifier(tree_method="hist", n_estimators=1000, early_stopping_rounds=50,
                              eval_metric="auc", n_jobs=2)  # fmt: skip
    model.fit(
        train[features],
        train["__target"],
        eval_set=[(valid[features], valid["__target"])],
        verbose=False,
    )
    baseline_wall = time.perf_counter() - started
    baseline_auc = roc_auc_score(test["__target"], model.predict_proba(test[features])[:, 1])

    report = {
        "run_id": summary["run_id"],
        "demo_wall_s": round(demo_wall, 1),
        "stages": {s: manifests[s].profile.model_dump() for s in STAGES},
        "test_auc": summary["metrics"].get("roc_auc"),
        "baseline_plain_xgboost_test_auc": round(float(baseline_auc), 4),
        "baseline_fit_wall_s": round(baseline_wall, 1),
        "train_stage_to_baseline_wall_ratio": round(
            manifests["train"].profile.wall_s / baseline_wall, 2
        ),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"flights-{summary['run_id']}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
