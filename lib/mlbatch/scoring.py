"""Scoring raw rows with a trained model: its exact fitted transformer, then the model in
its native format. Shared by evaluate (a champion), the predict stage and `mlbatch predict`.

A model folder holds what one run trained, laid out as a registered version is:
`model/` (model_info.json and the model file), `transformer.skops`, `feature_schema.json`,
and, when the run was evaluated, `metrics.json` (the binary threshold) and `spec.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlbatch import preprocessing, registry, storage
from mlbatch.errors import BadInput
from mlbatch.manifest import load_manifest, output_uri
from mlbatch.runs import RunLayout, current_spec_name, read_spec

# Every type a scikit-learn model file may hold (checked before loading): what train's
# linear and random forest families save (jobs/train/sklearn_io.py uses this list too),
# their fitted tail (one-hot and scaling) included. Nothing generic.
SKLEARN_TRUSTED_TYPES = frozenset({
    "sklearn.pipeline.Pipeline",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._ridge.Ridge",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
    "numpy.ndarray", "numpy.float64", "numpy.int64", "builtins.slice",
})  # fmt: skip
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class TrainedModel:
    """A model as train saved it, and what model_info.json says about it."""

    info: dict  # family, task, classes, features in column order, ...
    predictor: Any

    @property
    def family(self) -> str:
        return self.info["family"]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities of class 1 (binary), of each class (multiclass), or values."""
        if self.family == "ensemble":  # its members are on the target's own scale already
            return np.sum([w * m.predict(x) for w, m in self.predictor], axis=0)
        values = self._native_predict(x)
        # A regression target train learned as log1p(y) (target_transform in model_info):
        # predictions go back to the target's own scale here, for evaluate and predict alike.
        return np.expm1(values) if self.info.get("target_transform") == "log1p" else values

    def _native_predict(self, x: np.ndarray) -> np.ndarray:
        if self.family == "xgboost":
            import xgboost

            names = self.predictor.feature_names
            return self.predictor.predict(xgboost.DMatrix(x, feature_names=names))
        if self.family == "lightgbm":
            return self.predictor.predict(x)
        if getattr(self.predictor, "feature_names_in_", None) is not None:
            x = pd.DataFrame(x, columns=self.info["features"])  # fitted on named columns
        if self.info["task"] == "regression":
            return self.predictor.predict(x)
        probabilities = self.predictor.predict_proba(x)
        return probabilities[:, 1] if self.info["task"] == "binary" else probabilities


def load_model(model_dir: Path) -> TrainedModel:
    """model_info.json and the model it names: XGBoost and LightGBM natively, scikit-learn
    families from skops against an allow-list, and train's ensembles (ensemble.json: its
    members, each in one of those formats, and their weights)."""
    info = json.loads((model_dir / "model_info.json").read_text())
    return _load(info, model_dir)


def _load(info: dict, model_dir: Path) -> TrainedModel:
    path = model_dir / info["model_file"]
    if not path.resolve().is_relative_to(model_dir.resolve()):
        raise BadInput(f"model file {info['model_file']!r} lies outside the model folder")
    if info.get("family") == "ensemble":
        # train's ensemble.json: members, each in its native format, and their weights
        members = json.loads(path.read_text())["members"]
        shared = {k: info[k] for k in ("task", "features", "classes") if k in info}
        return TrainedModel(info, [
            (float(m["weight"]), _load({**shared, **m}, model_dir)) for m in members
        ])  # fmt: skip
    if info.get("family") == "xgboost":
        import xgboost

        return TrainedModel(info, xgboost.Booster(model_file=str(path)))
    if info.get("family") == "lightgbm":
        import lightgbm

        return TrainedModel(info, lightgbm.Booster(model_file=str(path)))
    if path.suffix == ".skops":
        import skops.io as sio

        found = set(sio.get_untrusted_types(file=path))
        if found - SKLEARN_TRUSTED_TYPES:
            raise BadInput(f"{path.name}: refusing types not on the allow-list: "
                           f"{sorted(found - SKLEARN_TRUSTED_TYPES)}")  # fmt: skip
        return TrainedModel(info, sio.load(path, trusted=sorted(found)))
    raise BadInput(
        f"model_info.json names a model family mlbatch cannot load: {info.get('family')!r}"
    )


@dataclass(frozen=True)
class Scorer:
    """Raw rows in, predictions out: the fitted transformer, then the model."""

    model: TrainedModel
    transformer: Any
    schema: dict  # feature_schema.json
    threshold: float  # binary: the probability from which the positive class is predicted

    @property
    def task(self) -> str:
        return self.schema["task"]

    @property
    def classes(self) -> list | None:
        return self.schema.get("classes")

    def required_columns(self) -> list[str]:
        """The raw columns the transformer reads."""
        inputs = getattr(self.transformer, "named_steps", {}).get("inputs")
        if inputs is not None:
            return [*inputs.numeric, *inputs.categorical, *inputs.dates]
        return list(getattr(self.transformer, "feature_names_in_", []))

    def check_columns(self, columns) -> None:
        missing = [c for c in self.required_columns() if c not in set(columns)]
        if missing:
            raise BadInput(f"the rows lack {len(missing)} column(s) the model needs: "
                           f"{', '.join(missing)}")  # fmt: skip

    def features(self, rows: pd.DataFrame) -> np.ndarray:
        """The model's feature matrix, columns in its order (extra input columns ignored)."""
        self.check_columns(rows.columns)
        categorical = [f["name"] for f in self.schema["features"] if f["kind"] == "categorical"]
        prepared = preprocessing.transform(self.transformer, rows, categorical)
        return prepared[self.model.info["features"]].to_numpy(dtype="float64")

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return self.model.predict(self.features(rows))

    def prediction_frame(self, rows: pd.DataFrame, *, keep: list[str]) -> pd.DataFrame:
        """The kept columns, `prediction`, and probabilities for classification."""
        missing = [c for c in keep if c not in rows.columns]
        if missing:
            raise BadInput(f"columns to keep are not in the rows: {', '.join(missing)}")
        scores = self.predict(rows)
        frame = rows[keep].reset_index(drop=True).copy()
        if self.task == "regression":
            frame["prediction"] = scores
            return frame
        labels = np.asarray(self.classes, dtype=object)
        if self.task == "binary":
            frame["prediction"] = pd.Series(labels[(scores >= self.threshold).astype(int)])
            frame["prediction"] = frame["prediction"].infer_objects()
            frame["probability"] = scores
            return frame
        frame["prediction"] = pd.Series(labels[scores.argmax(axis=1)]).infer_objects()
        for k, label in enumerate(self.classes):
            frame[f"probability_{label}"] = scores[:, k]
        return frame

    def describe(self) -> dict:
        """What the predictions mean: task, target, classes, positive class and threshold."""
        described = {"task": self.task, "target": self.schema.get("target")}
        if self.task == "binary":
            described.update(positive_class=self.classes[1], threshold=self.threshold)
        if self.classes is not None:
            described["classes"] = self.classes
        return described


def load_scorer(folder: Path) -> Scorer:
    """The scorer of a model folder (see the module's docstring)."""
    schema = json.loads((folder / "feature_schema.json").read_text())
    threshold = DEFAULT_THRESHOLD
    if (folder / "metrics.json").exists():
        evaluated = json.loads((folder / "metrics.json").read_text())
        threshold = (evaluated.get("threshold") or {}).get("value", DEFAULT_THRESHOLD)
    return Scorer(
        model=load_model(folder / "model"),
        transformer=preprocessing.load_transformer(folder / "transformer.skops"),
        schema=schema, threshold=threshold,
    )  # fmt: skip


def fetch_model(storage_uri: str, text: str, into: Path) -> dict:
    """Download the model a reference names into a model folder; where it came from."""
    reference = registry.parse_reference(text)
    if reference.run_id is not None:
        return _fetch_run(RunLayout(storage_uri, reference.run_id), into)
    record = registry.resolve(storage_uri, reference)
    registry.download_version(storage_uri, record, into)
    return {
        "reference": text, "name": record["name"], "version": record["version"],
        "run_id": record["run_id"],
        "uri": storage.join(registry.version_uri(storage_uri, record["name"], record["version"]),
                            "version.json"),
    }  # fmt: skip


def _fetch_run(layout: RunLayout, into: Path) -> dict:
    """A run's trained model: train's model/, features' transformer and schema, evaluate's
    metrics when it committed, and the run's spec."""
    wanted = {
        "features": ("transformer.skops", "feature_schema.json"),
        "evaluate": ("metrics.json",),
    }
    manifests = {}
    for stage in ("features", "train", "evaluate"):
        loaded = load_manifest(layout, stage)
        if loaded is None and stage != "evaluate":
            raise BadInput(f"run {layout.run_id} has no committed {stage} stage: nothing to score")
        if loaded is not None:
            manifests[stage] = loaded[0]
    for stage, manifest in manifests.items():
        paths = wanted.get(stage) or [p for p in manifest.outputs if p.startswith("model/")]
        for path in paths:
            storage.download_file(output_uri(layout, manifest, path), into / path)
    spec = read_spec(layout, current_spec_name(layout))
    (into / "spec.json").write_text(json.dumps(spec))
    return {"reference": layout.run_id, "run_id": layout.run_id,
            "uri": layout.manifest_uri("train")}  # fmt: skip


def read_rows(uri: str) -> pd.DataFrame:
    """A table in any format the etl stage reads (CSV dialect sniffed) as pandas."""
    from mlbatch.raw_tables import read_table
    from mlbatch.spec.etl import Source

    if storage.stat(uri) is None:
        raise BadInput(f"input not found: {uri}")
    keys = "a scoring spec's etl.sources.<name>"  # `mlbatch predict` has no dialect options
    return read_table(uri, Source(uri=uri), keys=keys).to_pandas()


def write_rows(frame: pd.DataFrame, uri: str, *, metadata: dict) -> None:
    """Parquet (metadata in its schema) or CSV, by the extension of uri."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    name = uri.lower()
    if not name.endswith((".parquet", ".csv")):
        raise BadInput(f"{uri}: predictions are written as .parquet or .csv")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    filesystem, path = storage.arrow_filesystem(uri)
    if storage.local_path(uri) is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".parquet"):
        table = table.replace_schema_metadata({
            **(table.schema.metadata or {}), b"mlbatch": json.dumps(metadata, default=str).encode()
        })  # fmt: skip
        pq.write_table(table, path, filesystem=filesystem)
        return
    with filesystem.open_output_stream(path) as stream:
        pa_csv.write_csv(table, stream)
