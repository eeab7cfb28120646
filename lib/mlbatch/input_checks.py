"""What a batch of rows to score holds that the model never learned from: numbers that
cannot be read, and categories unseen in training.

The transformer scores both anyway (an unreadable number as missing, an unseen category
as unknown), which is right for a stray value and wrong for a batch whose column changed
format. So predict counts them per column, reports them, and with
`predict.on_unparseable: fail` refuses to score a batch with unreadable numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlbatch.errors import BadInput
from mlbatch.input_values import EXAMPLES, unreadable_numbers
from mlbatch.preprocessing import LEARNED_VOCABULARY


def review_inputs(transformer: Any, rows: pd.DataFrame, *, on_unparseable: str, where: str) -> dict:
    """check_inputs, then the policy: BadInput under `fail` when a number cannot be read,
    else a warning line on stdout (the stage's log) when anything is off."""
    from mlbatch.notes import input_note

    quality = check_inputs(transformer, rows)
    if quality["unparseable"] and on_unparseable == "fail":
        raise unparseable_error(quality, where=where)
    note = input_note(quality)
    if note:
        print(f"warning: {note}", flush=True)
    return quality


def check_inputs(transformer: Any, rows: pd.DataFrame) -> dict:
    """{"rows", "unparseable": column -> {count, examples}, "unseen": column -> {count,
    share, examples}} for the raw rows a fitted transformer is about to score."""
    found: dict[str, Any] = {"rows": len(rows), "unparseable": {}, "unseen": {}}
    steps = getattr(transformer, "named_steps", {})
    inputs = steps.get("inputs")
    if inputs is None:
        return found
    for column in inputs.numeric:
        problem = unreadable_numbers(rows[column])[1]
        if problem is not None:
            found["unparseable"][column] = problem
    vocabularies = fitted_vocabularies(transformer)
    if not vocabularies:
        return found
    # The keys the encoders will look up: inputs as the transformer reads them, crosses made.
    keyed = inputs.transform(rows)
    if "crosses" in steps:
        keyed = steps["crosses"].transform(keyed)
    for column, vocabulary in vocabularies.items():
        values = keyed[column]
        unseen = values.notna() & ~values.isin(vocabulary)
        count = int(unseen.sum())
        found["unseen"][column] = {
            "count": count, "share": round(count / len(rows), 4) if len(rows) else 0.0,
            "examples": [str(v) for v in pd.unique(values[unseen])[:EXAMPLES]],
        }  # fmt: skip
    return found


def fitted_vocabularies(transformer: Any) -> dict[str, list]:
    """Categorical input (or cross) -> the categories its encoder learned in training."""
    learned = transformer.named_steps.get("vocabulary")
    if learned is not None:
        return {column: list(v) for column, v in learned.vocabularies_.items()}
    # Transformers saved before the vocabulary step: the encoders learned the strings.
    columns = transformer.named_steps.get("columns")
    vocabularies = {}
    for branch, fitted, names in getattr(columns, "transformers_", []):
        if branch not in LEARNED_VOCABULARY or not len(names):
            continue
        for name, categories in zip(names, fitted.categories_, strict=True):
            vocabularies[name] = [c for c in categories if not _missing(c)]
    return vocabularies


def unparseable_error(quality: dict, *, where: str) -> BadInput:
    """The error predict raises under `on_unparseable: fail`, naming columns and values."""
    named = "; ".join(
        f"column {column!r}: {entry['count']:,} value(s) that are not numbers "
        f"(e.g. {', '.join(repr(v) for v in entry['examples'])})"
        for column, entry in quality["unparseable"].items()
    )
    return BadInput(f"{where}: {named}; predict.on_unparseable is fail (warn scores them as "
                    "missing)")  # fmt: skip


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
