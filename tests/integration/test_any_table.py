"""`mlbatch run --data FILE --target COL` on tables it was not written for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pipeline_checks import FAST, check_run, mlbatch, run_json
from sklearn import datasets

pytestmark = pytest.mark.slow
ONE_MODEL = ["--set", "train.models=[lightgbm]"]


def _sklearn_table(loader, target_name: str) -> pd.DataFrame:
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    return frame.rename(columns={bunch.target.name: target_name})


def _made_up_table(rows: int = 3000, seed: int = 7) -> pd.DataFrame:
    """String categories, missing values and a multiclass label with a real signal."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["oslo", "lima", "pune", "kyiv", None], size=rows)
    plan = rng.choice(["free", "pro", "team"], size=rows, p=[0.5, 0.3, 0.2])
    usage = rng.gamma(2.0, 10.0, size=rows)
    usage[rng.random(rows) < 0.1] = np.nan
    score = np.nan_to_num(usage, nan=20) / 10 + (plan == "pro") * 2 + (plan == "team") * 4
    churn = np.where(score > 6, "stays", np.where(score > 3, "downgrades", "leaves"))
    return pd.DataFrame({"city": city, "plan": plan, "usage": usage, "outcome": churn})


@pytest.mark.parametrize(
    "name, make, target, task, metric",
    [
        ("cancer", lambda: _sklearn_table(datasets.load_breast_cancer, "malignant"), "malignant",
         "binary", "roc_auc"),
        ("wine", lambda: _sklearn_table(datasets.load_wine, "cultivar"), "cultivar",
         "multiclass", "roc_auc"),
        ("diabetes", lambda: _sklearn_table(datasets.load_diabetes, "progression"), "progression",
         "regression", "r2"),
        ("accounts", _made_up_table, "outcome", "multiclass", "accuracy"),
    ],
)  # fmt: skip
def test_any_table(tmp_path: Path, file_storage: str, name, make, target, task, metric):
    data = tmp_path / f"{name}.csv"
    make().to_csv(data, index=False)
    result = mlbatch(
        "run", "--data", str(data), "--target", target, "--storage", file_storage,
        "--output", "json", *FAST, *ONE_MODEL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = run_json(result)
    manifests = check_run(file_storage, summary["run_id"])
    assert manifests["etl"].metrics["task"] == task
    assert metric in summary["metrics"]
    # The spec the run used, with the task it inferred, is in the run.
    from mlbatch.runs import RunLayout, read_spec

    spec = read_spec(RunLayout(file_storage, summary["run_id"]))
    assert spec["task"] == task and spec["target"] == target
    if task != "regression":
        assert summary["metrics"]["accuracy"] > 0.6
    else:
        assert summary["metrics"]["r2"] > 0.2
