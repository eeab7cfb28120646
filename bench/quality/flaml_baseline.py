"""FLAML's AutoML with its defaults, in its own venv, on one table's train.csv.

    python flaml_baseline.py --train T --test S --target y --task binary --budget 60 \
        --predictions P.csv

Fits on the raw training rows (FLAML picks its own holdout or CV and its default
learners), writes the test predictions (common.py's format) and one JSON line.
"""

from __future__ import annotations

from common import METRICS, Clock, arguments, read_table, report, write_predictions


def main() -> None:
    from flaml import AutoML

    args = arguments(__doc__.splitlines()[0])
    x_train, y_train = read_table(args.train, args.target, args.task)
    x_test, _ = read_table(args.test, args.target, args.task)
    automl = AutoML()
    with Clock() as clock:
        automl.fit(
            x_train, y_train, time_budget=args.budget, metric=METRICS[args.task],
            task="regression" if args.task == "regression" else "classification",
            seed=0, verbose=0,
        )  # fmt: skip
    if args.task == "regression":
        write_predictions(args.predictions, args.task, automl.predict(x_test))
    else:
        write_predictions(args.predictions, args.task, automl.predict_proba(x_test),
                          classes=[str(c) for c in automl.classes_])  # fmt: skip
    report(fit_s=clock.seconds, best=automl.best_estimator)


if __name__ == "__main__":
    main()
