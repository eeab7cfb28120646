"""`engine: auto`: pandas while the table fits in free memory, Dask past it."""

from __future__ import annotations

import pytest

from mlbatch_jobs.etl import engine_choice
from mlbatch_jobs.etl.files import SourceFile

GIB = 1 << 30


@pytest.fixture
def free(monkeypatch):
    """Set how much memory the machine has free: free(16 * GIB)."""
    return lambda amount: monkeypatch.setattr(engine_choice, "available_bytes", lambda: amount)


def choose(size: int, fmt="parquet", compression=None, setting="auto", scheduler=None):
    files = [SourceFile(uri="file:///x", size=size, format=fmt, compression=compression)]
    return engine_choice.choose_engine(setting, files, widening=2.0, scheduler=scheduler)


def test_small_inputs_stay_in_memory(free):
    free(16 * GIB)
    engine, why = choose(30 << 20, "csv")
    assert engine == "pandas" and why == "auto: ~0.2 GiB needed in memory, 16.0 GiB free"


def test_large_inputs_go_to_dask(free):
    free(16 * GIB)
    assert choose(1 * GIB)[0] == "dask"  # Parquet expands about 7 times in memory
    assert choose(1 * GIB, "csv", compression="gzip")[0] == "dask"
    assert choose(1 * GIB, "csv")[0] == "pandas"
    free(4 * GIB)  # a container's limit, say
    assert choose(1 * GIB, "csv")[0] == "dask"


def test_a_declared_engine_is_kept(free):
    free(1 * GIB)
    assert choose(100 * GIB, setting="pandas") == ("pandas", "engine: pandas in the spec")


def test_a_given_cluster_takes_even_small_inputs(free):
    free(16 * GIB)
    address = "tcp://mlbatch-dask-scheduler:8786"
    assert choose(1 << 20, "csv", scheduler=address) == (
        "dask", f"auto: a Dask cluster is given ({address})"
    )
    assert choose(1 << 20, "csv", scheduler="")[0] == "pandas"  # set but empty: none
    assert choose(1 << 20, setting="pandas", scheduler=address)[0] == "pandas"


def test_available_memory_is_positive():
    assert engine_choice.available_bytes() > 0
