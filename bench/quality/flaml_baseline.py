"""FLAML (XGBoost + LightGBM) on mlbatch's split files, in its own venv.

    python flaml_baseline.py --train T --valid V --test S --budget 240 --metric roc_auc

Prints one JSON line: the test score and the wall time. FLAML tunes on train and ranks
on valid, as mlbatch's train stage does; test is scored once at the end.
"""

from __future__ import annotations

import argparse
import json
import time

from common import read_split, score


def main() -> None:
    from flaml import AutoML

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("train", "valid", "test"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--budget", type=float, required=True)
    parser.add_argument("--metric", default="roc_auc")
    parser.add_argument("--task", default="binary")
    args = parser.parse_args()
    x_train, y_train = read_split(args.train)
    x_valid, y_valid = read_split(args.valid)
    x_test, y_test = read_split(args.test)
    automl = AutoML()
    started = time.time()
    automl.fit(
        x_train, y_train, X_val=x_valid, y_val=y_valid, time_budget=args.budget,
        task="regression" if args.task == "regression" else "classification",
        metric={"roc_auc": "roc_auc", "log_loss": "log_loss", "rmse": "rmse"}[args.metric],
        estimator_list=["xgboost", "lgbm"], eval_method="holdout", seed=0, verbose=0,
    )  # fmt: skip
    wall = time.time() - started
    predictions = (
        automl.predict(x_test) if args.task == "regression" else automl.predict_proba(x_test)
    )
    print(json.dumps({
        "baseline": "flaml", "test": score(args.metric, args.task, y_test, predictions),
        "wall_s": round(wall, 1), "best_estimator": automl.best_estimator,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
