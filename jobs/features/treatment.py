"""Each column's treatment, chosen from the training rows and overridable in the spec.

Numbers: the imputation follows the shape (median when skewed, mean when not, the most
frequent value for a few discrete levels), plus a was-missing feature when enough rows
are missing. Categories: integer codes up to max_categories (rare ones grouped), target
encoding (cross-fitted) above, hashing above hash_above. Dates: the parts that vary,
cyclical sin/cos, days elapsed. Declared crosses are categories like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from mlbatch.preprocessing import (
    DATE_PARTS,
    FeatureCrosses,
    TransformerPlan,
    as_datetimes,
    cross_name,
    date_feature_names,
)
from mlbatch.spec import FeaturesSpec

SKEWED = 1.0  # |skewness| above which the median stands for a column, not the mean
DISCRETE_LEVELS = 10  # integer columns with at most this many values: the most frequent


@dataclass
class Choice:
    """One input column's treatment and the reasons, for the report and the schema."""

    column: str
    kind: str  # numeric, categorical, date or cross
    treatment: dict
    why: list[str] = field(default_factory=list)


def choose(
    train: pd.DataFrame, kinds: Mapping[str, str], spec: FeaturesSpec, *, task: str, seed: int
) -> tuple[TransformerPlan, list[Choice]]:
    """The transformer plan for these training rows, and what was chosen for each column."""
    choices: list[Choice] = []
    impute, fill, indicators, encoding, dates = {}, {}, [], {}, {}
    for column, kind in kinds.items():
        override = spec.columns.get(column)
        values = train[column]
        if kind == "numeric":
            choice = _numeric(column, pd.to_numeric(values, errors="coerce"), spec, override)
            impute[column] = choice.treatment["impute"]
            if choice.treatment["impute"] == "constant":
                fill[column] = choice.treatment["fill_value"]
        elif kind == "date":
            choice = _date(column, as_datetimes(values), spec)
            dates[column] = choice.treatment["parts"]
            parts = date_feature_names(column, dates[column], cyclical=spec.cyclical_dates)
            impute.update(dict.fromkeys(parts, "median"))
        else:
            choice = _categorical(column, values, spec, override)
            encoding[column] = choice.treatment["encoding"]
        if choice.treatment.get("indicator"):
            indicators.append(f"{column}_elapsed_days" if kind == "date" else column)
        choices.append(choice)
    for columns in spec.crosses:
        name = cross_name(columns)
        crossed = FeatureCrosses([columns]).transform(train[columns])[name]
        choice = _categorical(name, crossed, spec, None)
        choice.kind, choice.why = "cross", [f"declared cross of {columns}", *choice.why]
        encoding[name] = choice.treatment["encoding"]
        choices.append(choice)
    plan = TransformerPlan(
        task=task,
        numeric=[c for c, k in kinds.items() if k == "numeric"],
        categorical=[c for c, k in kinds.items() if k == "categorical"],
        dates=dates, crosses=[list(c) for c in spec.crosses], impute=impute,
        indicators=indicators, encoding=encoding, fill_values=fill,
        cyclical=spec.cyclical_dates, max_categories=spec.max_categories,
        rare_min_count=spec.rare_min_count, hash_buckets=spec.hash_buckets,
        reduce=spec.reduce.model_dump(), seed=seed,
    )  # fmt: skip
    return plan, choices


def _numeric(column: str, values: pd.Series, spec: FeaturesSpec, override) -> Choice:
    choice = Choice(column, "numeric", {})
    present = values.dropna()
    if override is not None and override.impute is not None:
        strategy, reason = override.impute, "set in the spec"
    elif present.nunique() <= DISCRETE_LEVELS and (present == present.round()).all():
        strategy = "most_frequent"
        reason = f"{present.nunique()} whole-number levels: the most frequent value"
    else:
        skew = float(present.skew()) if len(present) > 2 else 0.0
        if abs(skew) > SKEWED:
            strategy, reason = "median", f"skewed (skewness {skew:.2f}): the median"
        else:
            strategy, reason = "mean", f"roughly symmetric (skewness {skew:.2f}): the mean"
    choice.treatment["impute"] = strategy
    if strategy == "constant":
        choice.treatment["fill_value"] = override.fill_value
    choice.why.append(f"imputation: {reason}")
    _indicator(choice, values, spec, override)
    return choice


def _date(column: str, values: pd.Series, spec: FeaturesSpec) -> Choice:
    parts = [p for p in DATE_PARTS if getattr(values.dt, p).nunique() > 1]
    constant = [p for p in DATE_PARTS if p not in parts]
    choice = Choice(column, "date", {"parts": parts, "cyclical": spec.cyclical_dates})
    choice.why.append(f"date parts {parts} and days elapsed since the earliest training date")
    if constant:
        choice.why.append(f"{constant} left out: one value in every training row")
    if spec.cyclical_dates:
        choice.why.append("sin/cos of the cyclical parts, so December sits next to January")
    _indicator(choice, values, spec, spec.columns.get(column))
    return choice


def _categorical(column: str, values: pd.Series, spec: FeaturesSpec, override) -> Choice:
    distinct = int(values.nunique(dropna=True))
    if override is not None and override.encoding is not None:
        encoding, reason = override.encoding, "set in the spec"
    elif distinct <= spec.max_categories:
        encoding = "codes"
        reason = (
            f"{distinct} values: integer codes, categories seen fewer than "
            f"{spec.rare_min_count} times in training share one 'rare' code"
        )
    elif distinct <= spec.hash_above:
        encoding = "target"
        reason = (
            f"{distinct:,} values (more than {spec.max_categories}): target encoding, "
            "cross-fitted so that no training row's encoding saw its own target"
        )
    else:
        encoding = "hashing"
        reason = f"{distinct:,} values (more than {spec.hash_above:,}): hashed into "
        reason += f"{spec.hash_buckets} buckets, unseen values included"
    missing = {
        "codes": "missing and unseen values: code -1",
        "target": "missing: a category of its own; unseen: the training mean",
        "hashing": "missing: code -1; unseen values hash like any other",
    }[encoding]
    treatment = {"encoding": encoding, "distinct": distinct}
    return Choice(column, "categorical", treatment, [f"encoding: {reason}", missing])


def _indicator(choice: Choice, values: pd.Series, spec: FeaturesSpec, override) -> None:
    share = float(values.isna().mean()) if len(values) else 0.0
    if override is not None and override.indicator is not None:
        wanted, reason = override.indicator, "set in the spec"
    else:
        wanted = share >= spec.missing_indicator_share
        reason = f"{share:.1%} missing in training"
    choice.treatment["indicator"] = wanted
    if wanted:
        choice.why.append(f"was-missing feature: {reason}")
