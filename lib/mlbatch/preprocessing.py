"""The fitted feature transformer: built by features, applied by evaluate and predict.

One scikit-learn Pipeline takes raw rows (etl's columns) to prepared features: input
columns cast, date parts, declared crosses, categories as positions in their training
vocabulary, then per-column imputation, missing indicators and encodings, then an
optional reduction. It is saved with skops, never as a
pickle: loading checks every type in the file against an allow-list first, so a
transformer read from a shared bucket cannot run arbitrary code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.experimental import enable_iterative_imputer  # noqa: F401 (registers it)
from sklearn.impute import IterativeImputer, MissingIndicator, SimpleImputer
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder, TargetEncoder
from sklearn.utils import murmurhash3_32

from mlbatch.errors import BadInput
from mlbatch.input_values import as_datetimes, category_keys, in_zone, zone_of

UNKNOWN_CODE = -1  # categories unseen in training, and missing values
DATE_PARTS = ("year", "month", "day", "dayofweek", "hour")
CYCLES = {"month": 12, "dayofweek": 7, "hour": 24}  # parts drawn on a circle as sin/cos
CROSS_SEPARATOR = "_x_"
ENCODINGS = ("codes", "target", "hashing")
LEARNED_VOCABULARY = ("codes", "target")  # the encodings that learn one (hashing does not)
TARGET_ENCODER_FOLDS = 5
SCORING_ROWS = 50_000  # training rows a feature selection scores features on

# Every type a transformer file may contain beyond Python's plain containers (checked before
# loading): exactly the ones build_transformer uses, nothing generic.
TRUSTED_TYPES = frozenset({
    "mlbatch.preprocessing.InputColumns",
    "mlbatch.preprocessing.DateFeatures",
    "mlbatch.preprocessing.FeatureCrosses",
    "mlbatch.preprocessing.HashingEncoder",
    "mlbatch.preprocessing.MedianImputer",
    "mlbatch.preprocessing.SortedVocabulary",
    "mlbatch.preprocessing.ReduceFeatures",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.impute._base.MissingIndicator",
    "sklearn.impute._iterative.IterativeImputer",
    "sklearn.linear_model._bayes.BayesianRidge",  # IterativeImputer's per-column model
    "sklearn.model_selection._split.KFold",  # the target encoder's cross-fitting folds
    "sklearn.model_selection._split.StratifiedKFold",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._encoders.OrdinalEncoder",
    "sklearn.preprocessing._target_encoder.TargetEncoder",
    "numpy.dtype", "numpy.float64", "numpy.ndarray", "builtins.slice",
    "numpy.random.mtrand.RandomState",  # IterativeImputer's fitted random state
})  # fmt: skip


@dataclass(frozen=True)
class TransformerPlan:
    """What to build, column by column (chosen by the features stage from the data)."""

    task: str  # binary | multiclass | regression: how the target encoder reads y
    numeric: list[str]  # raw numeric inputs
    categorical: list[str]  # raw categorical inputs (encoded as strings)
    dates: dict[str, list[str]]  # date column -> parts kept (those that vary in training)
    crosses: list[list[str]]  # each becomes the categorical column "a_x_b"
    impute: dict[str, str]  # numeric column or date part -> SimpleImputer strategy/iterative
    indicators: list[str]  # columns that also get a was-missing feature
    encoding: dict[str, str]  # categorical column or cross -> codes | target | hashing
    fill_values: dict[str, float] = field(default_factory=dict)  # for impute "constant"
    cyclical: bool = True
    max_categories: int = 200
    rare_min_count: int = 10
    hash_buckets: int = 1024
    reduce: dict = field(default_factory=lambda: {"method": "none"})
    seed: int = 0


class InputColumns(TransformerMixin, BaseEstimator):
    """Select the input columns; numbers as float64, categories as canonical strings (one
    vocabulary whatever dtype a file gave them: see input_values.category_keys), dates as
    datetimes in the time zone they had at fit time (input_values.in_zone)."""

    def __init__(self, numeric=(), categorical=(), dates=()):
        self.numeric = numeric
        self.categorical = categorical
        self.dates = dates

    def fit(self, X, y=None):
        # The zone is part of what was learned: hours and weekdays were fitted in it.
        self.timezones_ = {c: zone_of(as_datetimes(X[c])) for c in self.dates}
        self.canonical_keys_ = True
        return self

    def transform(self, X):
        missing = [c for c in [*self.numeric, *self.categorical, *self.dates] if c not in X]
        if missing:
            raise BadInput(f"rows to transform lack columns {missing[:5]}")
        out = pd.DataFrame(index=X.index)
        for column in self.numeric:
            out[column] = pd.to_numeric(X[column], errors="coerce").astype("float64")
        # Transformers saved before keys were canonical keep their str() keys: their
        # vocabularies were learned with them.
        canonical = getattr(self, "canonical_keys_", False)
        for column in self.categorical:
            values = X[column]
            out[column] = (
                category_keys(values) if canonical
                else values.astype("str").where(values.notna(), np.nan).astype(object)
            )  # fmt: skip
        zones = getattr(self, "timezones_", None)
        for column in self.dates:
            values = as_datetimes(X[column])
            out[column] = values if zones is None else in_zone(values, zones.get(column))
        return out


class DateFeatures(TransformerMixin, BaseEstimator):
    """Replace each date column by its parts, their cyclical sin/cos, and the days elapsed
    since the earliest training date."""

    def __init__(self, parts=None, cyclical=True):
        self.parts = parts  # date column -> parts to keep
        self.cyclical = cyclical

    def fit(self, X, y=None):
        self.origin_ = {
            column: float(_seconds(X[column]).min()) if X[column].notna().any() else 0.0
            for column in self.parts or {}
        }
        return self

    def transform(self, X):
        X = X.copy(deep=False)  # new columns, never new values: no need to copy the rest
        for column, parts in (self.parts or {}).items():
            values = X.pop(column)
            for part in parts:
                number = getattr(values.dt, part).astype("float64")
                X[f"{column}_{part}"] = number
                if self.cyclical and part in CYCLES:
                    angle = 2 * np.pi * number / CYCLES[part]
                    X[f"{column}_{part}_sin"] = np.sin(angle)
                    X[f"{column}_{part}_cos"] = np.cos(angle)
            X[f"{column}_elapsed_days"] = (_seconds(values) - self.origin_[column]) / 86_400
        return X


def date_feature_names(column: str, parts: list[str], *, cyclical: bool) -> list[str]:
    """The columns DateFeatures makes of one date column, in its order."""
    names = []
    for part in parts:
        names.append(f"{column}_{part}")
        if cyclical and part in CYCLES:
            names += [f"{column}_{part}_sin", f"{column}_{part}_cos"]
    return [*names, f"{column}_elapsed_days"]


class FeatureCrosses(TransformerMixin, BaseEstimator):
    """Add one categorical column per declared cross: the values of its columns, joined."""

    def __init__(self, crosses=()):
        self.crosses = crosses

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        X = X.copy(deep=False)  # new columns, never new values: no need to copy the rest
        for columns in self.crosses:
            parts = [X[c].astype("str") for c in columns]
            joined = parts[0].str.cat(parts[1:], sep="|")
            X[cross_name(columns)] = joined.where(X[columns].notna().all(axis=1), np.nan)
        return X


class SortedVocabulary(TransformerMixin, BaseEstimator):
    """Categories as numbers for the encoders after it: a value's position in the sorted
    training vocabulary, one past the end for a value never seen in training, NaN when
    missing. scikit-learn's encoders count and look up Python objects one by one (half of
    features' time at 10M rows) but numbers in numpy; and positions sort as their strings
    do, so the codes and target encodings are the ones the strings would get."""

    def __init__(self, columns=()):
        self.columns = columns

    def fit(self, X, y=None):
        # Object arrays, never fixed-width unicode: one long category would widen every
        # entry to its length (10,000 categories and one of 5,000 characters: 200 MB).
        self.vocabularies_ = {
            column: np.array(sorted(pd.unique(X[column].dropna())), dtype=object)
            for column in self.columns
        }
        return self

    def transform(self, X):
        X = X.copy(deep=False)  # new columns, never new values: no need to copy the rest
        for column, vocabulary in self.vocabularies_.items():
            values = X[column]
            positions = pd.Index(vocabulary, dtype=object).get_indexer(values).astype("float64")
            positions[positions < 0] = len(vocabulary)  # unseen: a number no training row has
            positions[values.isna().to_numpy()] = np.nan
            X[column] = positions
        return X


class MedianImputer(TransformerMixin, BaseEstimator):
    """SimpleImputer(strategy="median", keep_empty_features=True)'s result, a column
    missing in every training row filled with 0, from one partition per column: the
    masked sort SimpleImputer runs over the whole block grew faster than the rows and, at
    10M rows, cost more than every encoder together."""

    def fit(self, X, y=None):
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.statistics_ = np.array([_median(X[c].to_numpy("float64")) for c in X.columns])
        return self

    def transform(self, X):
        filled = dict(zip(self.feature_names_in_, self.statistics_, strict=True))
        return X[list(self.feature_names_in_)].astype("float64").fillna(filled)

    def get_feature_names_out(self, input_features=None):
        return np.asarray(self.feature_names_in_, dtype=object)


class HashingEncoder(TransformerMixin, BaseEstimator):
    """Feature hashing: each value's murmur3 hash modulo n_buckets, as a categorical code.
    Stateless, so values never seen in training still land in a bucket."""

    def __init__(self, n_buckets=1024):
        self.n_buckets = n_buckets

    def fit(self, X, y=None):
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def transform(self, X):
        out = {}
        for column in X.columns:
            values = X[column]
            unique = values.dropna().unique()
            buckets = {v: murmurhash3_32(str(v), positive=True) % self.n_buckets for v in unique}
            out[column] = values.map(buckets).fillna(UNKNOWN_CODE).to_numpy("float64")
        return pd.DataFrame(out, index=X.index)

    def get_feature_names_out(self, input_features=None):
        return np.asarray(self.feature_names_in_, dtype=object)


class ReduceFeatures(TransformerMixin, BaseEstimator):
    """Optional reduction learned on the training rows: keep features by variance, mutual
    information or a small tree ensemble's importances, or project the numeric features on
    principal components (categorical codes pass through). Only names, scores and the
    projection are kept, never a fitted model."""

    def __init__(self, method="none", keep=None, min_variance=0.0, categorical=(),
                 task="binary", random_state=0):  # fmt: skip
        self.method = method
        self.keep = keep
        self.min_variance = min_variance
        self.categorical = categorical
        self.task = task
        self.random_state = random_state

    def fit(self, X, y=None):
        if self.method == "pca":
            return self._fit_pca(X)
        if self.method == "variance":
            scores = X.var().to_numpy()
            keep = scores > self.min_variance
        else:
            scores = self._relevance(X, y)
            keep = np.zeros(len(scores), bool)
            keep[np.argsort(-scores, kind="stable")[: self.keep]] = True
        self.scores_ = {c: float(s) for c, s in zip(X.columns, scores, strict=True)}
        self.kept_ = [c for c, k in zip(X.columns, keep, strict=True) if k]
        return self

    def transform(self, X):
        if self.method != "pca":
            return X[self.kept_]
        values = X[self.numeric_].to_numpy(dtype="float64")
        projected = ((values - self.center_) / self.scale_) @ self.components_.T
        out = pd.DataFrame(projected, columns=self.kept_[: projected.shape[1]], index=X.index)
        return pd.concat([out, X[[c for c in X.columns if c in self.categorical]]], axis=1)

    def _relevance(self, X, y):
        """Mutual information or tree importances, on at most SCORING_ROWS training rows
        (both grow faster than linearly with rows, and a sample ranks features as well)."""
        from sklearn import ensemble, feature_selection

        if len(X) > SCORING_ROWS:
            rows = np.random.default_rng(self.random_state).choice(len(X), SCORING_ROWS, False)
            X, y = X.iloc[np.sort(rows)], np.asarray(y)[np.sort(rows)]
        classify = self.task != "regression"
        if self.method == "mutual_info":
            score = feature_selection.mutual_info_regression
            if classify:
                score = feature_selection.mutual_info_classif
            discrete = X.columns.isin(self.categorical)
            return score(X, y, discrete_features=discrete, random_state=self.random_state)
        forest = ensemble.ExtraTreesClassifier if classify else ensemble.ExtraTreesRegressor
        model = forest(n_estimators=100, min_samples_leaf=20, n_jobs=1,
                       random_state=self.random_state)  # fmt: skip
        return model.fit(X, y).feature_importances_

    def _fit_pca(self, X):
        from sklearn.decomposition import PCA

        self.numeric_ = [c for c in X.columns if c not in self.categorical]
        values = X[self.numeric_].to_numpy(dtype="float64")
        self.center_ = values.mean(axis=0)
        self.scale_ = np.where(values.std(axis=0) > 0, values.std(axis=0), 1.0)
        pca = PCA(n_components=self.keep or 0.95, random_state=self.random_state)
        pca.fit((values - self.center_) / self.scale_)
        self.components_ = pca.components_
        self.scores_ = {f"pca_{i}": float(r) for i, r in enumerate(pca.explained_variance_ratio_)}
        self.kept_ = [*self.scores_, *(c for c in X.columns if c in self.categorical)]
        return self


def cross_name(columns: list[str]) -> str:
    return CROSS_SEPARATOR.join(columns)


def build_transformer(plan: TransformerPlan) -> Pipeline:
    """The unfitted pipeline for a plan; fit it on training rows only."""
    steps = [
        ("inputs", InputColumns(plan.numeric, plan.categorical, list(plan.dates))),
        ("crosses", FeatureCrosses(plan.crosses)),
        ("dates", DateFeatures(plan.dates, cyclical=plan.cyclical)),
        ("vocabulary", SortedVocabulary(_learned_vocabulary(plan))),
        ("columns", _column_transformer(plan)),
    ]
    if plan.reduce.get("method", "none") != "none":
        categorical = [c for c, e in plan.encoding.items() if e in ("codes", "hashing")]
        steps.append((
            "reduce",
            ReduceFeatures(
                method=plan.reduce["method"], keep=plan.reduce.get("keep"),
                min_variance=plan.reduce.get("min_variance", 0.0), categorical=categorical,
                task=plan.task, random_state=plan.seed,
            ),
        ))  # fmt: skip
    return Pipeline(steps)


def _learned_vocabulary(plan: TransformerPlan) -> list[str]:
    return [c for c, e in plan.encoding.items() if e in LEARNED_VOCABULARY]


def _column_transformer(plan: TransformerPlan) -> ColumnTransformer:
    by_encoding = {e: [c for c, x in plan.encoding.items() if x == e] for e in ENCODINGS}
    codes = OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=UNKNOWN_CODE,
        encoded_missing_value=UNKNOWN_CODE, min_frequency=plan.rare_min_count,
        max_categories=plan.max_categories, dtype=np.float64,
    )  # fmt: skip
    branches = [
        *_imputation_branches(plan),
        ("missing", MissingIndicator(features="all"), plan.indicators),
        ("codes", codes, by_encoding["codes"]),
        ("target", _target_encoder(plan), by_encoding["target"]),
        ("hashing", HashingEncoder(plan.hash_buckets), by_encoding["hashing"]),
    ]
    # A branch without columns has nothing to fit and nothing to save.
    return ColumnTransformer(
        [b for b in branches if b[2]], remainder="drop", verbose_feature_names_out=False
    ).set_output(transform="pandas")


def _imputation_branches(plan: TransformerPlan) -> list[tuple]:
    """One imputer per strategy (and per fill value), over the columns that use it."""
    groups: dict[tuple[str, float | None], list[str]] = {}
    for column, strategy in plan.impute.items():
        value = plan.fill_values.get(column, 0.0) if strategy == "constant" else None
        groups.setdefault((strategy, value), []).append(column)
    branches = []
    for (strategy, value), columns in groups.items():
        if strategy == "iterative":
            imputer = IterativeImputer(max_iter=10, random_state=plan.seed)
        elif strategy == "median":
            imputer = MedianImputer()
        else:
            imputer = SimpleImputer(strategy=strategy, fill_value=value, keep_empty_features=True)
        name = f"impute_{strategy}" + (f"_{value:g}" if value is not None else "")
        branches.append((name, imputer, columns))
    return branches


def _target_encoder(plan: TransformerPlan) -> TargetEncoder:
    """Cross-fitted in fit_transform: a training row's encoding never saw its own target."""
    if plan.task == "regression":
        folds = KFold(TARGET_ENCODER_FOLDS, shuffle=True, random_state=plan.seed)
        return TargetEncoder(target_type="continuous", cv=folds)
    folds = StratifiedKFold(TARGET_ENCODER_FOLDS, shuffle=True, random_state=plan.seed)
    return TargetEncoder(target_type=plan.task, cv=folds)


def transform(transformer: Pipeline, frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Apply a fitted transformer to raw rows; codes as int32, everything else float64."""
    return as_feature_dtypes(transformer.transform(frame), categorical)


def as_feature_dtypes(prepared: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    kinds = {c: "int32" if c in categorical else "float64" for c in prepared.columns}
    return prepared.astype(kinds)


def save_transformer(transformer: Pipeline, path: Path) -> None:
    import skops.io as sio

    sio.dump(transformer, path)


def load_transformer(path: Path) -> Pipeline:
    """Load a transformer file, refusing any type outside the allow-list."""
    import skops.io as sio

    found = set(sio.get_untrusted_types(file=path))
    untrusted = found - TRUSTED_TYPES
    if untrusted:
        raise BadInput(f"{path}: refusing to load types not on the allow-list: {sorted(untrusted)}")
    return sio.load(path, trusted=sorted(found))


def _median(values: np.ndarray) -> float:
    present = values[~np.isnan(values)]
    return float(np.median(present)) if present.size else 0.0


def _seconds(values: pd.Series) -> pd.Series:
    """Seconds since the epoch (NaN for missing), whatever the datetime's unit."""
    return (pd.to_datetime(values, utc=True) - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
