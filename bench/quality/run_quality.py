"""mlbatch's train stage against AutoML baselines on the same split files and budget.

    python bench/quality/run_quality.py [--run RUN_ID] [--storage DIR] [--baselines flaml,autogluon]

Without --run, runs the flights demo first (examples/flights.yaml). Each baseline runs in
its own venv (VENVS/<name>/bin/python, made by `make bench-quality`) on the features
stage's splits/{train,valid,test}.parquet, with train.time_budget_s as its budget. Writes
bench/results/quality-<run>.json with the test scores and mlbatch's ratio to each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from mlbatch import storage
from mlbatch.manifest import load_manifest, output_uri
from mlbatch.runs import RunLayout, read_spec

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
VENVS = Path(os.environ.get("MLBATCH_QUALITY_VENVS", "/tmp/mlbatch-quality"))


def run_demo(root: str) -> str:
    cli = [sys.executable, "-m", "mlbatch.controller.cli"]
    subprocess.run([*cli, "demo-data", "--storage", root], check=True, capture_output=True)
    done = subprocess.run(
        [*cli, "run", str(REPO / "examples" / "flights.yaml"), "--storage", root, "-o", "json"],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"the demo failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return json.loads(done.stdout)["run_id"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="an existing run id (default: run the flights demo)")
    parser.add_argument("--storage", default=str(REPO / "bench" / "results" / "store"))
    parser.add_argument("--baselines", default="flaml,autogluon")
    args = parser.parse_args()
    root = storage.resolve_uri(args.storage)
    run_id = args.run or run_demo(root)
    layout = RunLayout(root, run_id)
    spec = read_spec(layout)
    features, _ = load_manifest(layout, "features")
    train, _ = load_manifest(layout, "train")
    evaluate = load_manifest(layout, "evaluate")
    schema = json.loads(storage.read_bytes(output_uri(layout, features, "feature_schema.json")))
    splits = {name: str(storage.local_path(output_uri(layout, features, f"splits/{name}.parquet")))
              for name in ("train", "valid", "test")}  # fmt: skip
    metric = train.metrics["tuning_metric"]
    budget = spec.get("train", {}).get("time_budget_s", 300)
    ours = (evaluate[0].metrics.get(metric) if evaluate else None) or train.metrics[
        f"test_{metric}"
    ]
    report = {"run_id": run_id, "metric": metric, "budget_s": budget, "mlbatch": {
        "test": ours, "best_family": train.metrics["best_family"], "wall_s": train.profile.wall_s,
    }, "baselines": {}}  # fmt: skip
    for name in args.baselines.split(","):
        python = VENVS / name / "bin" / "python"
        if not python.exists():
            report["baselines"][name] = {"skipped": f"no venv at {python.parent.parent}"}
            continue
        done = subprocess.run(
            [str(python), str(Path(__file__).with_name(f"{name}_baseline.py")),
             "--train", splits["train"], "--valid", splits["valid"], "--test", splits["test"],
             "--budget", str(budget), "--metric", metric, "--task", schema["task"]],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            report["baselines"][name] = {"failed": done.stderr[-1500:]}
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["mlbatch_ratio"] = round(ours / result["test"], 4)  # >1: mlbatch better (AUC)
        report["baselines"][name] = result
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"quality-{run_id}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
