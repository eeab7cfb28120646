"""tally.py's cheap paths give the facts of its plain one: text counted on its dictionary
codes (as reading.py reads it), whole numbers counted by np.bincount, float extremes taken
by numpy."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mlbatch_jobs.explore.tally import ColumnTally
from mlbatch_jobs.explore.values import clean

WORDS = [f"w{i:03d}" for i in range(300)]


def facts(tally: ColumnTally) -> dict:
    return {
        "rows": tally.rows, "missing": tally.missing, "present": tally.present,
        "distinct": tally.distinct(), "estimated": tally.estimated,
        "counts": sorted(tally.value_counts()),
        "registers": None if tally.sketch is None else tally.sketch.registers.tolist(),
    }  # fmt: skip


def text_batches(seed: int) -> list[pa.Array]:
    """Batches of WORDS with missing values, one of them all missing."""
    rng = np.random.default_rng(seed)
    batches = []
    for rows in (500, 40, 0, 700, 30):
        words = rng.choice(WORDS + [None], rows, p=[0.9 / len(WORDS)] * len(WORDS) + [0.1])
        batches.append(pa.array(words.tolist(), type=pa.string()))
    batches.append(pa.nulls(20, pa.string()))
    return batches


def coded(batch: pa.Array, rng: np.random.Generator) -> pa.DictionaryArray:
    """The batch as codes into a dictionary of its own: shuffled, with values no row uses,
    and its first value twice (rows point at either copy)."""
    present = pc.unique(batch.drop_null()).to_pylist()
    unused = [f"unused{i}" for i in range(int(rng.integers(0, 5)))]
    values = list(rng.permutation(np.array(present + unused, dtype=object)))
    dictionary = values + values[:1]
    position = {value: index for index, value in enumerate(values)}
    codes = [None if v is None else position[v] for v in batch.to_pylist()]
    if values and values[0] in present:
        codes = [len(values) if c == 0 and rng.random() < 0.5 else c for c in codes]
    return pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int32()),
                                          pa.array(dictionary, type=pa.string()))  # fmt: skip


@pytest.mark.parametrize("exact_distinct", [None, 1000, 100])
def test_text_counted_on_its_codes_is_counted_as_text(exact_distinct):
    """Each batch brings a dictionary of its own; counts merge by value. Past the limit
    (100 of the 300 words) the sketch sees the same values either way."""
    rng = np.random.default_rng(1)
    batches = text_batches(seed=2)
    plain, codes, chunked = (ColumnTally(pa.string(), exact_distinct) for _ in range(3))
    for batch in batches:
        plain.add(batch)
        codes.add(coded(batch, rng))
    chunked.add(pa.chunked_array([coded(batch, rng) for batch in batches]))
    for tally in (plain, codes, chunked):
        tally.finish()
    assert plain.missing > 20 and plain.estimated == (exact_distinct == 100)
    assert facts(codes) == facts(plain)
    assert facts(chunked) == facts(plain)


def test_a_missing_value_in_the_dictionary_counts_as_missing():
    batch = pa.DictionaryArray.from_arrays(pa.array([0, 1, 2, 1, None], type=pa.int8()),
                                           pa.array(["a", None, "b"]))  # fmt: skip
    plain, codes = ColumnTally(pa.string()), ColumnTally(pa.string())
    plain.add(pa.array(["a", None, "b", None, None]))
    codes.add(batch)
    plain.finish()
    codes.finish()
    assert facts(codes) == facts(plain)
    assert codes.missing == 3 and sorted(codes.value_counts()) == [("a", 1), ("b", 1)]


@pytest.mark.parametrize(
    "values",
    [
        pa.array(np.tile(np.arange(-120, 121, 3, dtype=np.int8), 20)),  # 8-bit, spans 240
        pa.array(np.arange(5000, dtype=np.uint64) % 700 + np.uint64(2**63)),  # past int64
        pa.array(np.arange(5000, dtype=np.uint64)[::-1] % 900),
        pa.array(np.tile([3.0, -0.0, 0.0, 7.0], 1000)),  # whole floats, both zeros
        pa.array(np.tile([0.0, -0.0, 2.5], 1000)),  # zero as the minimum, in either sign
        pa.array(np.tile([-1.5, -0.0, 0.0], 1000)),  # and as the maximum
        pa.array(np.tile([-0.0, 0.25], 1000), type=pa.float32()),
        pa.array([1.0, float("inf"), float("nan"), None, -4.0] * 200),
    ],
    ids=["int8", "uint64_high", "uint64", "zeros", "zero_low", "zero_high", "float32", "inf"],
)
def test_numbers_are_tallied_as_arrow_sees_them(values):
    """Extremes (Arrow's of each batch, as before numpy took floats'), value counts and
    distinct counts equal Arrow's: -0.0 and 0.0 stay apart, and neither narrow nor 64-bit
    unsigned integers wrap."""
    tally = ColumnTally(values.type, exact_distinct=None)
    low = high = None
    for start in range(0, len(values), 1000):
        batch = values.slice(start, 1000)
        tally.add(batch)
        extremes = pc.min_max(clean(batch))
        low = extremes["min"].as_py() if low is None else min(low, extremes["min"].as_py())
        high = extremes["max"].as_py() if high is None else max(high, extremes["max"].as_py())
    tally.finish()
    assert (repr(tally.low), repr(tally.high)) == (repr(low), repr(high))
    counts = pc.value_counts(clean(values).drop_null())
    wanted = sorted(zip(map(repr, counts.field("values").to_pylist()),
                        counts.field("counts").to_pylist(), strict=True))  # fmt: skip
    assert sorted((repr(v), n) for v, n in tally.value_counts()) == wanted
    assert tally.distinct() == len(wanted)
