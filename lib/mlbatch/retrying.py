"""Retrying storage calls through the outages object stores have: dropped connections,
throttling, 5xx, a server restarting. Exponential backoff with full jitter, bounded by a
deadline (MLBATCH_STORAGE_RETRY_S, default 120 s), so a stage rides out a restart but
still fails cleanly when storage is gone for good."""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

RETRYABLE_CODES = frozenset({
    "500", "502", "503", "504", "InternalError", "ServiceUnavailable", "SlowDown",
    "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
})  # fmt: skip
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 8.0


def is_transient(error: BaseException) -> bool:
    """A failure worth trying again: the network or the server, not the request."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
        ResponseStreamingError,
    )

    if isinstance(
        error,
        (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError,
         ResponseStreamingError, ConnectionError),
    ):  # fmt: skip
        return True
    response = getattr(error, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return code in RETRYABLE_CODES or (isinstance(status, int) and status >= 500)


def deadline_s() -> float:
    return float(os.environ.get("MLBATCH_STORAGE_RETRY_S", "120"))


def call(
    operation: Callable[[], T],
    *,
    describe: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run `operation`, retrying transient failures until the deadline; then re-raise."""
    give_up_at = clock() + deadline_s()
    delay = FIRST_DELAY_S
    while True:
        try:
            return operation()
        except Exception as error:
            if not is_transient(error) or clock() >= give_up_at:
                raise
            wait = min(random.uniform(0, delay), max(give_up_at - clock(), 0))
            message = f"[mlbatch] storage: {describe} failed ({type(error).__name__}); retrying"
            print(message, file=sys.stderr)
            sleep(wait)
            delay = min(delay * 2, MAX_DELAY_S)
