"""CatBoost with AutoGluon's defaults against LightGBM's (the portfolio's first point) on
the quality benchmark's tables: whether a CatBoost family is worth adding to mlbatch.

    pip install catboost   # not an mlbatch dependency; the AutoGluon venv has it
    python bench/quality/probe_catboost.py [--datasets caravan,hpc_data] [--seeds 4]

The same protocol as probe_extra_trees.py, whose LightGBM it runs: per table and seed an
inner 80/20 split of train.csv, early stopping on the validation loss, a refit on all of
train.csv with the rounds scaled to the rows, scored on test.csv as the benchmark scores.
CatBoost gets its categorical columns as categories (its ordered target statistics), at
learning rate 0.05 and depth 6, as AutoGluon's CatBoost model starts. One thread.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from catboost import CatBoost, Pool
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from datasets import BY_NAME, prepare  # noqa: E402
from probe_extra_trees import compare, load, test_metric  # noqa: E402
from probe_extra_trees import test_score as lightgbm_score  # noqa: E402
from run_quality import WORK  # noqa: E402

LOSSES = {"binary": "Logloss", "multiclass": "MultiClass", "regression": "RMSE"}
CONFIG = {"learning_rate": 0.05, "depth": 6, "l2_leaf_reg": 3.0, "thread_count": 1,
          "allow_writing_files": False, "verbose": False}  # fmt: skip


def pool(x: pd.DataFrame, y, categorical: list[str]) -> Pool:
    """CatBoost takes categories as text without missing values."""
    x = x.copy()
    for column in categorical:
        x[column] = x[column].astype(str)
    return Pool(x, y, cat_features=categorical)


def catboost_score(name: str, seed: int) -> float:
    dataset = BY_NAME[name]
    folder = prepare(dataset, WORK / "data")
    x, y, x_test, y_test = load(folder, dataset)
    classes = sorted(y.unique()) if dataset.task != "regression" else []
    labels = y.map({label: n for n, label in enumerate(classes)}) if classes else y
    categorical = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
    params = {**CONFIG, "loss_function": LOSSES[dataset.task], "random_seed": seed}
    x_fit, x_valid, y_fit, y_valid = train_test_split(
        x, labels, test_size=0.2, random_state=seed, stratify=labels if classes else None
    )
    stopped = CatBoost({**params, "iterations": 5000, "od_type": "Iter", "od_wait": 50})
    stopped.fit(pool(x_fit, y_fit, categorical), eval_set=pool(x_valid, y_valid, categorical),
                use_best_model=True)  # fmt: skip
    rounds = max(1, round((stopped.get_best_iteration() + 1) * len(x) / len(x_fit)))
    model = CatBoost({**params, "iterations": rounds})
    model.fit(pool(x, labels, categorical))
    kind = "Probability" if classes else "RawFormulaVal"
    predicted = model.predict(pool(x_test, None, categorical), prediction_type=kind)
    if dataset.task == "binary":
        predicted = predicted[:, 1]
    return test_metric(dataset.task, predicted, classes, y_test)


def main() -> None:
    compare(__doc__.splitlines()[0], [
        ("LightGBM defaults", lambda name, seed: lightgbm_score(name, False, seed)),
        ("CatBoost defaults", catboost_score),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
