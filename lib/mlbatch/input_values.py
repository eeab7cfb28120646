"""How raw values become the transformer's inputs, the same way at fit and at predict time.

A file does not fix a column's pandas dtype: a code column with a null in it arrives as
float64 (3.0) in one batch and int64 (3) in the next; Arrow `date32` columns arrive as
objects (datetime.date); a CSV's timestamps may carry an offset that a Parquet file's do
not. Each function here maps every such variant to one canonical form, so that a
category, a date or a time zone means the same in training and in scoring.
"""

from __future__ import annotations

import datetime
import decimal

import numpy as np
import pandas as pd

EXACT_INTEGERS = 2**53  # float64 holds every integer below this exactly
EXAMPLES = 3  # unreadable values quoted in a report


def is_dates(values: pd.Series) -> bool:
    """datetime64 (naive or with a zone), or Arrow dates pandas left as datetime.date."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return True
    return values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "date"


def as_datetimes(values: pd.Series) -> pd.Series:
    """Datetimes in the time zone they carry, so that hours and weekdays are local (a
    departure at 7 in New York is hour 7). Calendar dates (datetime.date) become naive
    midnights; text is parsed, offsets to UTC; what cannot be read becomes NaT."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    if is_dates(values):
        return pd.to_datetime(values, errors="coerce")
    return pd.to_datetime(values, utc=True, errors="coerce")


def zone_of(values: pd.Series) -> str | None:
    """The time zone of datetimes (as_datetimes' output), None when naive."""
    zone = getattr(values.dtype, "tz", None)
    return None if zone is None else str(zone)


def in_zone(values: pd.Series, zone: str | None) -> pd.Series:
    """Datetimes as the transformer was fitted on them: in its zone, or naive.

    Aware at fit time, naive now: the times are read as wall-clock times in the fitted
    zone (times a daylight-saving change skips or repeats become NaT). Naive at fit time,
    aware now: the zone is dropped and the local wall-clock time kept. Both keep the
    meaning the date parts were fitted with: local hours, local weekdays.
    """
    current = zone_of(values)
    if zone is None:
        return values if current is None else values.dt.tz_localize(None)
    if current is None:
        return values.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    return values if current == zone else values.dt.tz_convert(zone)


def category_keys(values: pd.Series) -> pd.Series:
    """The string naming each value's category, missing values NaN: whole numbers as
    integers whatever their dtype (3, 3.0, np.float32(3) and Decimal("3") are all "3"),
    other numbers as Python prints floats, everything else as str()."""
    present = values.notna()
    if pd.api.types.is_float_dtype(values):
        keys = pd.Series(_number_keys(values.to_numpy("float64", na_value=np.nan)),
                         index=values.index)  # fmt: skip
    elif values.dtype == object:
        keys = values.map(_object_key, na_action="ignore")
    else:
        keys = values.astype("str")
    return _shared_strings(keys.where(present, np.nan))


def _shared_strings(keys: pd.Series) -> pd.Series:
    """The keys as an object column in which equal keys are one Python string: a column
    of a few hundred categories then holds a few hundred strings, not one per row (8
    bytes a row instead of ~60). Missing keys stay NaN."""
    codes, uniques = pd.factorize(keys)  # missing: -1, the last entry of `shared`
    shared = np.append(np.asarray(uniques, dtype=object), np.nan)
    return pd.Series(shared[codes], index=keys.index, name=keys.name, dtype=object)


def _number_keys(numbers: np.ndarray) -> np.ndarray:
    whole = np.isfinite(numbers) & (np.abs(numbers) < EXACT_INTEGERS)
    whole &= numbers == np.round(numbers)
    keys = numbers.astype("str").astype(object)
    keys[whole] = numbers[whole].astype(np.int64).astype("str")
    return keys


def _object_key(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, float, np.integer, np.floating, decimal.Decimal)):
        return str(_number_keys(np.array([float(value)]))[0])
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return str(value)


def unreadable_numbers(values: pd.Series) -> tuple[pd.Series, dict | None]:
    """Numbers as float64, and what could not be read: {"count", "examples"}, or None when
    every value that is present is a number."""
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return numbers, None
    failed = values.notna() & numbers.isna()
    if not failed.any():
        return numbers, None
    examples = [str(v) for v in pd.unique(values[failed])[:EXAMPLES]]
    return numbers, {"count": int(failed.sum()), "examples": examples}
