"""XGBoost with its default settings, in mlbatch's venv: the floor every AutoML should clear.

    python xgboost_baseline.py --train T --test S --target y --task binary --budget 60 \
        --predictions P.csv

The one preparation a data scientist would write in a minute: ISO date text becomes
numbers (days since 1970, year, month, day of week), other text and booleans become
pandas categories (the training rows' vocabulary; XGBoost's native categorical splits),
missing values stay missing. No tuning, no early stopping; --budget is not used.
"""

from __future__ import annotations

import pandas as pd
from common import Clock, arguments, read_table, report, write_predictions

ISO_DATE = r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?"


def prepare(train: pd.DataFrame, test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = train.copy(), test.copy()
    for column in list(train.columns):
        if train[column].dtype.kind in "iuf":
            continue
        text = train[column].dropna().astype(str)
        if len(text) and text.str.match(ISO_DATE).mean() > 0.95:
            for frame in (train, test):
                when = pd.to_datetime(frame[column].astype(str).str.slice(0, 19),
                                      errors="coerce", format="mixed")  # fmt: skip
                frame[f"{column}_days"] = (when - pd.Timestamp("1970-01-01")).dt.days
                frame[f"{column}_year"] = when.dt.year
                frame[f"{column}_month"] = when.dt.month
                frame[f"{column}_dow"] = when.dt.dayofweek
                frame.drop(columns=[column], inplace=True)
            continue
        vocabulary = sorted(text.unique())
        for frame in (train, test):
            frame[column] = pd.Categorical(frame[column].astype("string"), categories=vocabulary)
    return train, test


def main() -> None:
    import numpy as np
    import xgboost

    args = arguments(__doc__.splitlines()[0])
    x_train, y_train = read_table(args.train, args.target, args.task)
    x_test, _ = read_table(args.test, args.target, args.task)
    x_train, x_test = prepare(x_train, x_test)
    with Clock() as clock:
        if args.task == "regression":
            model = xgboost.XGBRegressor(enable_categorical=True, tree_method="hist")
            model.fit(x_train, y_train)
        else:
            classes = np.array(sorted(y_train.unique()))
            model = xgboost.XGBClassifier(enable_categorical=True, tree_method="hist")
            model.fit(x_train, np.searchsorted(classes, y_train.to_numpy()))
    if args.task == "regression":
        write_predictions(args.predictions, args.task, model.predict(x_test))
    else:
        write_predictions(args.predictions, args.task, model.predict_proba(x_test),
                          classes=list(classes))  # fmt: skip
    report(fit_s=clock.seconds, best="xgboost defaults", version=xgboost.__version__)


if __name__ == "__main__":
    main()
