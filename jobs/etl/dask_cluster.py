"""The Dask cluster the engine runs on: an existing scheduler when DASK_SCHEDULER_ADDRESS
is set, otherwise a local cluster of worker processes that lives as long as the stage."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlbatch_jobs.etl.engine_choice import available_bytes


@contextmanager
def dask_client(*, workers: int | None, scratch: Path) -> Iterator[tuple[object, bool]]:
    """(client, local): local is False when the workers may be on other machines."""
    from distributed import Client, LocalCluster

    address = os.environ.get("DASK_SCHEDULER_ADDRESS")
    if address:
        with Client(address) as client:
            yield client, False
        return
    count = workers or len(os.sched_getaffinity(0))
    # Each worker gets its share of what is free now; past it, Dask spills to local disk.
    with (
        LocalCluster(
            n_workers=count, threads_per_worker=1, processes=True, dashboard_address=None,
            memory_limit=max(available_bytes() // count, 1 << 30),
            local_directory=str(scratch),
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        yield client, True
