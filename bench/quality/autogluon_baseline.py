"""AutoGluon-Tabular `medium_quality`, in its own venv, on one table's train.csv.

    python autogluon_baseline.py --train T --test S --target y --task binary --budget 60 \
        --predictions P.csv

Fits on the raw training rows (AutoGluon holds out its own tuning rows and ensembles),
writes the test predictions (common.py's format) and one JSON line.
"""

from __future__ import annotations

import tempfile

import pandas as pd
from common import Clock, arguments, read_table, report, write_predictions

EVAL_METRIC = {"binary": "roc_auc", "multiclass": "log_loss",
               "regression": "root_mean_squared_error"}  # fmt: skip


def main() -> None:
    from autogluon.tabular import TabularPredictor

    args = arguments(__doc__.splitlines()[0])
    x_train, y_train = read_table(args.train, args.target, args.task)
    x_test, _ = read_table(args.test, args.target, args.task)
    train = pd.concat([x_train, y_train.rename("__target")], axis=1)
    with tempfile.TemporaryDirectory() as folder:
        predictor = TabularPredictor(label="__target", problem_type=args.task, path=folder,
                                     eval_metric=EVAL_METRIC[args.task], verbosity=0)  # fmt: skip
        with Clock() as clock:
            predictor.fit(train, time_limit=args.budget, presets="medium_quality")
        if args.task == "regression":
            write_predictions(args.predictions, args.task, predictor.predict(x_test))
        else:
            probabilities = predictor.predict_proba(x_test)
            write_predictions(args.predictions, args.task, probabilities.to_numpy(),
                              classes=[str(c) for c in probabilities.columns])  # fmt: skip
        best = predictor.model_best
    report(fit_s=clock.seconds, best=best)


if __name__ == "__main__":
    main()
