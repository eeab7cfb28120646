"""AutoGluon-Tabular (medium_quality) on mlbatch's split files, in its own venv.

    python autogluon_baseline.py --train T --valid V --test S --budget 240 --metric roc_auc

Prints one JSON line: the test score and the wall time. AutoGluon fits on train, tunes
and ensembles on valid (tuning_data), and scores test once at the end.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from common import TARGET, read_frame, score


def main() -> None:
    from autogluon.tabular import TabularPredictor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("train", "valid", "test"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--budget", type=float, required=True)
    parser.add_argument("--metric", default="roc_auc")
    parser.add_argument("--task", default="binary")
    args = parser.parse_args()
    train, valid, test = (read_frame(path) for path in (args.train, args.valid, args.test))
    problem = {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}
    with tempfile.TemporaryDirectory() as folder:
        predictor = TabularPredictor(
            label=TARGET, problem_type=problem[args.task], path=folder,
            eval_metric={"roc_auc": "roc_auc", "log_loss": "log_loss",
                         "rmse": "root_mean_squared_error"}[args.metric],
        )  # fmt: skip
        started = time.time()
        predictor.fit(train, tuning_data=valid, time_limit=args.budget,
                      presets="medium_quality", verbosity=0)  # fmt: skip
        wall = time.time() - started
        features = test.drop(columns=[TARGET])
        if args.task == "regression":
            predictions = predictor.predict(features).to_numpy()
        else:
            predictions = predictor.predict_proba(features).to_numpy()
    print(json.dumps({
        "baseline": "autogluon", "test": score(args.metric, args.task, test[TARGET], predictions),
        "wall_s": round(wall, 1), "best_model": predictor.model_best,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
