"""Small tables for tests that need a whole pipeline run but not a big one."""

from __future__ import annotations

from pathlib import Path

from sklearn import datasets

# One LightGBM trial: these tests check the machinery, not the model.
# The explore notebook's kernel costs several seconds a run; test_notebook.py, the flights
# demo and test_secrets.py run it.
QUICK = [
    "--set", "train.num_samples=1", "--set", "train.models=[lightgbm]",
    "--set", "train.time_budget_s=20", "--set", "explore.notebook=false",
]  # fmt: skip


def cancer_csv(directory: Path) -> Path:
    """scikit-learn's breast cancer table (569 rows, binary `target`) as a CSV."""
    path = directory / "cancer.csv"
    if not path.exists():
        datasets.load_breast_cancer(as_frame=True).frame.to_csv(path, index=False)
    return path
