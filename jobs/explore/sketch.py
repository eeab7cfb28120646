"""A HyperLogLog sketch: the number of distinct values of a column too large to count
exactly, estimated over every row in a fixed 16 KiB (Flajolet et al. 2007, 64-bit hashes).

The standard error is 1.04 / sqrt(2**BITS), 0.8% with BITS = 14: a column unique per row
is estimated at 97.6% of its rows or more with three-sigma certainty, clear of the 95% the
advice's identifier rules test. Below 2.5 * 2**BITS distinct values the estimate falls back
to linear counting, as the paper prescribes; explore only sketches columns that already
have more than tally.EXACT_DISTINCT (100,000) values, well above that range.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa

BITS = 14
REGISTERS = 1 << BITS
STANDARD_ERROR = 1.04 / math.sqrt(REGISTERS)


class DistinctSketch:
    def __init__(self) -> None:
        self.registers = np.zeros(REGISTERS, dtype=np.uint8)

    def add(self, values: pa.Array | pa.ChunkedArray) -> None:
        """Adds the non-missing values (a value seen before changes nothing)."""
        hashes = hash_values(values)
        if not len(hashes):
            return
        index = (hashes >> np.uint64(64 - BITS)).astype(np.intp)
        # The bits left of the index, with a stop bit so the rank never exceeds 64 - BITS + 1.
        rest = (hashes << np.uint64(BITS)) | np.uint64(1 << (BITS - 1))
        rank = (64 - _bit_length(rest) + 1).astype(np.uint8)
        np.maximum.at(self.registers, index, rank)

    def estimate(self) -> float:
        alpha = 0.7213 / (1 + 1.079 / REGISTERS)
        raw = alpha * REGISTERS**2 / float(np.sum(np.ldexp(1.0, -self.registers.astype(int))))
        empty = int(np.count_nonzero(self.registers == 0))
        if raw <= 2.5 * REGISTERS and empty:
            return REGISTERS * math.log(REGISTERS / empty)
        return raw


def hash_values(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit hashes of the non-missing values: numbers and times by value, the rest by
    their text (two values hash alike only when they are equal, up to collisions)."""
    values = values.drop_null()
    type_ = values.type
    if pa.types.is_integer(type_) or pa.types.is_timestamp(type_):
        array = values.cast(pa.int64()).to_numpy()
    elif pa.types.is_floating(type_):
        array = values.cast(pa.float64()).to_numpy() + 0.0  # -0.0 and 0.0 are one value
    elif pa.types.is_boolean(type_):
        array = values.cast(pa.int8()).to_numpy()
    else:
        array = values.cast(pa.large_string()).to_numpy(zero_copy_only=False)
    return pd.util.hash_array(np.asarray(array), categorize=False)


def _bit_length(x: np.ndarray) -> np.ndarray:
    """Bits needed for each (unsigned, non-zero) value, by halving the width each step."""
    x = x.copy()
    length = np.zeros(x.shape, dtype=np.int64)
    for shift in (32, 16, 8, 4, 2, 1):
        high = x >= (np.uint64(1) << np.uint64(shift))
        length[high] += shift
        x[high] >>= np.uint64(shift)
    return length + (x > 0)
