"""The Dask cluster the engine runs on: an existing scheduler when DASK_SCHEDULER_ADDRESS
is set (the chart's `dask.enabled`), otherwise a local cluster of worker processes that
lives as long as the stage."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlbatch.errors import BadInput, MlbatchError
from mlbatch_jobs.etl.engine_choice import available_bytes

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
# A scheduler Deployment may still be starting, or its workers restarting: wait a little
# (this long, in seconds), then fail retryably (exit 1) rather than hang until the Job's
# deadline.
CONNECT_TIMEOUT_ENV = "MLBATCH_DASK_CONNECT_S"
CONNECT_TIMEOUT_S = 60.0


@contextmanager
def dask_client(*, workers: int | None, scratch: Path) -> Iterator[tuple[object, bool]]:
    """(client, local): local is False when the workers may be on other machines."""
    from distributed import Client, LocalCluster

    address = os.environ.get(SCHEDULER_ENV)
    if address:
        with _remote_client(address) as client:
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


@contextmanager
def _remote_client(address: str) -> Iterator[object]:
    from distributed import Client

    timeout = float(os.environ.get(CONNECT_TIMEOUT_ENV) or CONNECT_TIMEOUT_S)
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as error:
        raise MlbatchError(
            f"cannot reach the Dask scheduler at {address} ({SCHEDULER_ENV}): {error}"
        ) from None
    with client:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise MlbatchError(
                f"the Dask scheduler at {address} has no workers after {timeout:g} s"
            ) from None
        print(f"dask: scheduler {address}, {len(client.nthreads())} workers")
        yield client


def require_shared_files(client, paths: list[Path]) -> None:
    """Fail with one line unless every worker sees these local paths (file:// storage on a
    remote cluster works only where the workers share this machine's filesystem)."""
    missing = client.run(_missing, [str(p) for p in paths])
    for worker, absent in sorted(missing.items()):
        if absent:
            raise BadInput(
                f"file:// storage on a remote Dask cluster: worker {worker} cannot see "
                f"{absent[0]} ({SCHEDULER_ENV} is set); use s3:// storage, or workers that "
                "share this machine's filesystem"
            )


def _missing(paths: list[str]) -> list[str]:
    """On a worker: the paths it cannot see."""
    return [p for p in paths if not os.path.exists(p)]
