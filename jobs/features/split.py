"""The train/valid/test split: fixed by a seed, stratified for classification."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from mlbatch.spec import SplitSpec


def split_rows(labels: np.ndarray, split: SplitSpec, *, stratify: bool) -> dict[str, np.ndarray]:
    """Row positions of each split, sorted; every row lands in exactly one split."""
    rows = np.arange(len(labels))
    strata = labels if stratify else None
    rest, test = train_test_split(
        rows, test_size=split.test, random_state=split.seed, stratify=strata
    )
    valid_share = split.valid / (split.train + split.valid)
    train, valid = train_test_split(
        rest,
        test_size=valid_share,
        random_state=split.seed,
        stratify=labels[rest] if stratify else None,
    )
    return {"train": np.sort(train), "valid": np.sort(valid), "test": np.sort(test)}
