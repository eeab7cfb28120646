"""LightGBM's defaults with and without random split thresholds (`extra_trees`) on the
quality benchmark's tables: the evidence for where the portfolio tries them.

    python bench/quality/probe_extra_trees.py [--datasets caravan,hpc_data] [--seeds 4]

Per table and seed: an inner 80/20 split of train.csv (stratified for classification),
LightGBM at learning rate 0.05 (the portfolio's first configuration) stopped early on the
validation loss, refit on all of train.csv with the rounds scaled to the rows, scored on
test.csv as the benchmark scores (ROC AUC, log loss, RMSE). One thread, so it can run
beside a benchmark's contender without taking its cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import lightgbm
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import METRICS, read_table, score, write_predictions  # noqa: E402
from datasets import BY_NAME, DATASETS, prepare  # noqa: E402
from run_quality import WORK  # noqa: E402

CONFIG = {"learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 20,
          "min_child_weight": 1e-3, "subsample": 1.0, "colsample_bytree": 1.0,
          "reg_lambda": 1e-3, "reg_alpha": 1e-3, "cat_smooth": 10.0, "bagging_freq": 1,
          "num_threads": 1, "verbosity": -1}  # fmt: skip
OBJECTIVES = {"binary": {"objective": "binary", "metric": "binary_logloss"},
              "multiclass": {"objective": "multiclass", "metric": "multi_logloss"},
              "regression": {"objective": "regression", "metric": "l2"}}  # fmt: skip


def load(folder: Path, dataset):
    """x, y of train.csv and test.csv as every contender reads them (common.read_table),
    text as pandas categories of the training values."""
    x, y = read_table(str(folder / "train.csv"), dataset.target, dataset.task)
    x_test, y_test = read_table(str(folder / "test.csv"), dataset.target, dataset.task)
    for column in x.columns:
        if not pd.api.types.is_numeric_dtype(x[column]):
            kind = pd.CategoricalDtype(sorted(x[column].dropna().unique()))
            x[column], x_test[column] = x[column].astype(kind), x_test[column].astype(kind)
    return x, y, x_test, y_test


def test_score(name: str, extra_trees: bool, seed: int) -> float:
    dataset = BY_NAME[name]
    folder = prepare(dataset, WORK / "data")
    x, y, x_test, y_test = load(folder, dataset)
    classes = sorted(y.unique()) if dataset.task != "regression" else []
    labels = y.map({label: n for n, label in enumerate(classes)}) if classes else y
    params = {**CONFIG, **OBJECTIVES[dataset.task], "extra_trees": extra_trees, "seed": seed}
    if dataset.task == "multiclass":
        params["num_class"] = len(classes)
    stratify = labels if classes else None
    x_fit, x_valid, y_fit, y_valid = train_test_split(
        x, labels, test_size=0.2, random_state=seed, stratify=stratify
    )
    stopped = lightgbm.train(
        params, lightgbm.Dataset(x_fit, y_fit), 5000,
        valid_sets=[lightgbm.Dataset(x_valid, y_valid)],
        callbacks=[lightgbm.early_stopping(50, verbose=False)],
    )  # fmt: skip
    rounds = max(1, round(stopped.best_iteration * len(x) / len(x_fit)))
    predicted = lightgbm.train(params, lightgbm.Dataset(x, labels), rounds).predict(x_test)
    return test_metric(dataset.task, predicted, classes, y_test)


def test_metric(task: str, predicted, classes: list, y_test) -> float:
    """The benchmark's metric of test predictions, written and scored as a contender's."""
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "predictions.csv")
        write_predictions(path, task, predicted, classes=classes)
        scores = score(task, y_test, pd.read_csv(path))
    return scores[METRICS[task]]


def compare(description: str, contenders: list[tuple]) -> None:
    """The command line of a probe: per table, the mean test score of a baseline and of a
    challenger over the seeds, and in how many seeds the challenger was better.
    contenders: [(label, scorer), (label, scorer)], a scorer (table, seed) -> score."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--datasets", default=",".join(d.name for d in DATASETS))
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    (first, baseline), (second, challenger) = contenders
    print(f"| table | metric | {first} | {second} | {second} better on |")
    print("|---|---|---:|---:|---:|")
    for name in args.datasets.split(","):
        task = BY_NAME[name].task
        a = [baseline(name, seed) for seed in range(args.seeds)]
        b = [challenger(name, seed) for seed in range(args.seeds)]
        higher = task == "binary"
        wins = sum((y > x) == higher for x, y in zip(a, b, strict=True))
        metric = {"binary": "roc_auc ↑", "multiclass": "log_loss ↓", "regression": "rmse ↓"}
        print(f"| {name} | {metric[task]} | {np.mean(a):.4f} | {np.mean(b):.4f} | "
              f"{wins} of {args.seeds} |", flush=True)  # fmt: skip


def main() -> None:
    compare(__doc__.splitlines()[0], [
        ("defaults", lambda name, seed: test_score(name, False, seed)),
        ("extra_trees", lambda name, seed: test_score(name, True, seed)),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
