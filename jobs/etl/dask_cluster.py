"""The Dask cluster the engine runs on: an existing scheduler when DASK_SCHEDULER_ADDRESS
is set (the chart's `dask.enabled`), otherwise a local cluster of worker processes that
lives as long as the stage."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlbatch.codeversion import ENV_VAR as CODE_VERSION_ENV
from mlbatch.codeversion import code_version
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

    try:
        timeout = float(os.environ.get(CONNECT_TIMEOUT_ENV) or CONNECT_TIMEOUT_S)
    except ValueError:
        raise BadInput(f"{CONNECT_TIMEOUT_ENV} must be a number of seconds") from None
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
        _check_code_version(client, address)
        yield client


def _check_code_version(client, address: str) -> None:
    """Workers run the task functions of their own image: it must be this etl code (the
    chart's dask.imageTag). Workers that do not say (no MLBATCH_CODE_VERSION) are trusted."""
    ours = code_version("etl")
    theirs = client.run(os.getenv, CODE_VERSION_ENV)  # os.environ.get would pickle ours
    for worker, version in sorted(theirs.items()):
        if version and version != ours:
            raise BadInput(
                f"the Dask worker {worker} (scheduler {address}) runs etl code {version}, but "
                f"this stage is {ours}: redeploy the chart with dask.imageTag={ours}"
            )
    if not all(theirs.values()):
        print(f"dask: some workers do not say their code version ({CODE_VERSION_ENV}); "
              "tasks run whatever code they have")  # fmt: skip


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
