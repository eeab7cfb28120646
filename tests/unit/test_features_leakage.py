"""Proof that everything is fitted on the training split only: valid and test rows, their
values and their targets, change nothing the transformer learned nor any training row's
features; and training rows' target encodings never saw their own target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_features_treatment import KINDS, raw

from mlbatch import preprocessing
from mlbatch.spec import FeaturesSpec
from mlbatch_jobs.features.prepare import ROW_ID, TARGET, fit_prepare
from mlbatch_jobs.features.treatment import choose

ROWS = {"train": np.arange(2000), "valid": np.arange(2000, 2500), "test": np.arange(2500, 3000)}
SPEC = FeaturesSpec(max_categories=50, hash_above=1000, crosses=[["low", "levels"]])


def fitted(table: pd.DataFrame, labels: np.ndarray):
    plan, _ = choose(table.iloc[ROWS["train"]], KINDS, SPEC, task="binary", seed=0)
    return fit_prepare(plan, table, labels, ROWS)


def learned_state(transformer) -> dict:
    """Every fitted attribute (ending in _) of every step, as comparable values."""
    state = {"dates": transformer.named_steps["dates"].origin_}
    for name, step in transformer.named_steps["columns"].named_transformers_.items():
        for attribute, value in vars(step).items():
            if attribute.endswith("_") and not attribute.startswith("_"):
                state[f"{name}.{attribute}"] = repr(value)
    return state


def tampered(table: pd.DataFrame, labels: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Valid and test rows with other values, new categories and flipped targets."""
    table, labels = table.copy(), labels.copy()
    others = np.concatenate([ROWS["valid"], ROWS["test"]])
    table.loc[others, "skewed"] *= 100
    table.loc[others, "symmetric"] = np.nan
    table.loc[others, "high"] = table.loc[others[::-1], "high"].to_numpy()  # targets move
    table.loc[others[:50], "low"] = "never-seen"
    table.loc[others, "when"] += pd.Timedelta(days=3000)
    labels[others] = 1 - labels[others]
    return table, labels


@pytest.fixture(scope="module")
def original():
    table, labels = raw()
    return table, labels, fitted(table, labels)


def test_valid_and_test_rows_change_nothing_learned(original):
    table, labels, before = original
    after = fitted(*tampered(table, labels))
    assert learned_state(after.transformer) == learned_state(before.transformer)
    pd.testing.assert_frame_equal(after.frames["train"], before.frames["train"])


def test_fitting_on_test_rows_would_have_changed_the_encoding(original):
    """The control: the check above can fail. Test rows in the fit move the encodings."""
    table, labels, before = original
    plan, _ = choose(table, KINDS, SPEC, task="binary", seed=0)
    everything = fit_prepare(plan, table, labels, {"train": np.arange(3000)})
    leaky = _encodings(everything.transformer)
    honest = _encodings(before.transformer)
    moved = [abs(leaky[c] - honest[c]) > 1e-9 for c in honest if c in leaky]
    assert np.mean(moved) > 0.5


def _encodings(transformer) -> dict:
    """Category -> target encoding of the first target-encoded column."""
    encoder = transformer.named_steps["columns"].named_transformers_["target"]
    return dict(zip(encoder.categories_[0], encoder.encodings_[0], strict=True))


def test_valid_and_test_are_only_transformed(original):
    table, _, before = original
    categorical = [f["name"] for f in before.features if f["kind"] == "categorical"]
    for name in ("valid", "test"):
        again = preprocessing.transform(before.transformer, table.iloc[ROWS[name]], categorical)
        expected = before.frames[name].drop(columns=[ROW_ID, TARGET])
        pd.testing.assert_frame_equal(again.reset_index(drop=True), expected)


def test_training_rows_are_target_encoded_out_of_fold(original):
    table, labels, before = original
    in_sample = before.transformer.transform(table.iloc[ROWS["train"]])["high"].to_numpy()
    cross_fitted = before.frames["train"]["high"].to_numpy()
    assert (np.abs(in_sample - cross_fitted) > 1e-9).mean() > 0.5
    # One training row's own target moves its in-sample encoding, never its cross-fitted one.
    flipped = labels.copy()
    flipped[0] = 1 - flipped[0]
    again = fitted(table, flipped)
    assert again.frames["train"]["high"].iloc[0] == cross_fitted[0]
    assert again.transformer.transform(table.iloc[:1])["high"].iloc[0] != in_sample[0]
