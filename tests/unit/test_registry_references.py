"""Model references, and what a scikit-learn model file may hold."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skops.io
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from mlbatch import scoring
from mlbatch.errors import BadInput
from mlbatch.registry import Reference, parse_reference
from mlbatch.spec.predict import PredictSpec

RUN_ID = "20261126-153812-4f0a2c"


@pytest.mark.parametrize(("text", "expected"), [
    ("flights-delay@production", Reference("flights-delay@production", name="flights-delay",
                                           alias="production")),
    ("flights-delay:12", Reference("flights-delay:12", name="flights-delay", version=12)),
    (RUN_ID, Reference(RUN_ID, run_id=RUN_ID)),
])  # fmt: skip
def test_references(text, expected):
    assert parse_reference(text) == expected


@pytest.mark.parametrize("text", ["flights", "Flights@prod", "m:0", "m:-1", "m@", "m@a b", "m:1@x"])
def test_bad_references_name_the_forms(text):
    with pytest.raises(BadInput, match="is not NAME@ALIAS, NAME:VERSION or a run id"):
        parse_reference(text)


def test_a_bare_name_only_where_allowed():
    assert parse_reference("flights", bare_name=True) == Reference("flights", name="flights")


def test_the_predict_section_checks_its_reference_and_output():
    assert PredictSpec(model="m@production", output="out/p.csv").output == "out/p.csv"
    with pytest.raises(ValueError, match="is not NAME@ALIAS"):
        PredictSpec(model="m")
    with pytest.raises(ValueError, match="must end in .parquet or .csv"):
        PredictSpec(model="m:1", output="p.json")


def _model_folder(tmp_path, estimator):
    x = np.random.default_rng(0).normal(size=(60, 2))
    folder = tmp_path / "model"
    folder.mkdir()
    skops.io.dump(estimator.fit(x, (x[:, 0] > 0).astype(int)), folder / "model.skops")
    info = {"family": "random_forest", "model_file": "model.skops", "task": "binary",
            "features": ["a", "b"]}  # fmt: skip
    (folder / "model_info.json").write_text(json.dumps(info))
    return folder


def test_scikit_learn_families_load_from_skops_against_the_allow_list(tmp_path):
    model = scoring.load_model(_model_folder(tmp_path, RandomForestClassifier(5, random_state=0)))
    assert model.predict(np.array([[2.0, 0.0], [-2.0, 0.0]])).round().tolist() == [1.0, 0.0]


def test_a_model_file_with_types_off_the_allow_list_is_refused(tmp_path):
    folder = _model_folder(tmp_path, HistGradientBoostingClassifier(max_iter=3))
    with pytest.raises(BadInput, match="refusing types not on the allow-list.*TreePredictor"):
        scoring.load_model(folder)
