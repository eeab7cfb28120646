"""Workers lost while the Dask engine computes, as one line that names the cause.

When a worker passes 95 % of its memory limit its nanny restarts it; the tasks it held
are retried, and after a few such deaths Dask gives up with KilledWorker, or the client's
futures end as FutureCancelledError "already forgotten": neither says why. The nanny
records each restart for memory as a `worker-restart-memory` event on the scheduler,
which tells the two apart. Either way the attempt is retryable (exit 1): a worker
restarted for memory may fit the next time, when other stages no longer share it."""

from __future__ import annotations

import time
from asyncio import CancelledError
from collections.abc import Iterator
from contextlib import contextmanager

from mlbatch.errors import MlbatchError

MEMORY_EVENT = "worker-restart-memory"  # what distributed's nanny logs before restarting
EVENT_DELAY_S = 2.0  # how long an event may lag behind the failure it caused


class WorkerLost(MlbatchError):
    """A worker died or was restarted while the stage's tasks ran (exit 1, retryable)."""


def lost_worker_errors() -> tuple[type[BaseException], ...]:
    from distributed import KilledWorker
    from distributed.client import FutureCancelledError
    from distributed.comm import CommClosedError
    from distributed.utils import CancelledError as DistributedCancelled

    return KilledWorker, FutureCancelledError, DistributedCancelled, CancelledError, CommClosedError


@contextmanager
def explain_lost_workers(
    client, *, partition_mb: float, memory_limit: int | None
) -> Iterator[None]:
    """Turn a lost worker into WorkerLost, naming a memory restart when there was one
    (memory_limit: the workers' smallest, as they were at the start)."""
    started = time.time()
    try:
        yield
    except lost_worker_errors() as error:
        raise WorkerLost(
            describe(
                client, error, since=started, partition_mb=partition_mb, memory_limit=memory_limit
            )
        ) from None


def describe(
    client, error: BaseException, *, since: float, partition_mb: float, memory_limit: int | None
) -> str:
    restarts = _memory_restarts(client, since)
    if not restarts:  # the nanny's event may trail the failure: look once more
        time.sleep(EVENT_DELAY_S)
        restarts = _memory_restarts(client, since)
    if restarts:
        event = restarts[-1]
        limit = _memory_limit(client, event.get("worker")) or memory_limit
        rss = f", {event['rss'] / 2**20:,.0f} MiB resident" if event.get("rss") else ""
        limit_text = (
            f"its memory limit ({limit / 2**20:,.0f} MiB{rss})" if limit else "its memory limit"
        )
        return (
            f"a Dask worker passed {limit_text} and was restarted ({len(restarts)} restart"
            f"{'s' if len(restarts) != 1 else ''} for memory); give the workers more memory "
            "(the chart's dask.worker.resources.limits.memory, or `dask worker --memory-limit`)"
            f" or smaller partitions (etl.dask.partition_mb, {partition_mb:.1f} MiB now)"
        )
    first = (str(error).splitlines() or [""])[0]
    what = f"{type(error).__name__}: {first}" if first else type(error).__name__
    return (
        f"a Dask worker was lost while the etl ran ({what[:300]}); no restart for memory "
        "was recorded: see the workers' logs"
    )


def _memory_restarts(client, since: float) -> list[dict]:
    try:
        events = client.get_events(MEMORY_EVENT)
    except Exception:  # noqa: BLE001 - the scheduler itself may be gone: no cause to name
        return []
    return [event for stamp, event in events if stamp >= since and isinstance(event, dict)]


def _memory_limit(client, worker: str | None) -> int | None:
    """The restarted worker's limit (the nanny keeps its address), else the smallest."""
    try:
        workers = client.scheduler_info()["workers"]
    except Exception:  # noqa: BLE001
        return None
    limits = {address: info.get("memory_limit") or 0 for address, info in workers.items()}
    if limits.get(worker):
        return limits[worker]
    return min((v for v in limits.values() if v), default=None)
