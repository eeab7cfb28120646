"""The Kubernetes API client: created lazily, and API calls retried on transient answers."""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import urllib3
from kubernetes import client, config

from mlbatch.errors import BadInput, MlbatchError

log = logging.getLogger(__name__)

T = TypeVar("T")

# 429: API Priority and Fairness or a webhook shedding load; 5xx: an apiserver or etcd
# hiccup. kubernetes.io/docs/concepts/cluster-administration/flow-control/
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


def load_api_client(*, context: str | None = None) -> client.ApiClient:
    """An API client from KUBECONFIG (or ~/.kube/config), else the pod's ServiceAccount."""
    kubeconfig = os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
    has_kubeconfig = any(Path(p).is_file() for p in kubeconfig.split(os.pathsep) if p)
    if has_kubeconfig or context:
        try:
            # Named explicitly: the client reads KUBECONFIG once, when it is imported.
            return config.new_client_from_config(config_file=kubeconfig, context=context)
        except (config.ConfigException, OSError) as error:
            raise BadInput(f"cannot use kubeconfig {kubeconfig!r}: {error}") from error
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException as error:
            raise BadInput(f"cannot use the in-cluster ServiceAccount: {error}") from error
        return client.ApiClient(configuration)
    raise BadInput(
        "no Kubernetes cluster configured: set KUBECONFIG (or create ~/.kube/config), "
        "or run the controller in a pod"
    )


def is_transient(error: Exception) -> bool:
    """Whether a failed API call may succeed if simply tried again."""
    if isinstance(error, client.ApiException):
        return error.status in TRANSIENT_STATUSES
    # Connection refused or reset, read timeouts: the apiserver restarting or a flaky LB.
    return isinstance(error, urllib3.exceptions.HTTPError)


def call_with_retries(
    call: Callable[[], T],
    *,
    what: str,
    attempts: int,
    delay_s: float,
    max_delay_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run one API call, trying again after transient failures with jittered backoff."""
    attempt = 1
    while True:
        try:
            return call()
        except (client.ApiException, urllib3.exceptions.HTTPError) as error:
            if not is_transient(error) or attempt >= attempts:
                raise
            # "Equal jitter": half fixed, half random, so a herd of controllers spreads out.
            backoff = min(max_delay_s, delay_s * 2 ** (attempt - 1))
            wait = _retry_after(error, limit=max_delay_s)
            if wait is None:
                wait = backoff / 2 + random.uniform(0, backoff / 2)
            log.warning(
                "%s: %s; trying again in %.1f s (%d/%d)",
                what, describe_api_error(error), wait, attempt, attempts,
            )  # fmt: skip
        sleep(wait)
        attempt += 1


def describe_api_error(error: Exception) -> str:
    """One line a person can act on, from an ApiException's Status body or any error."""
    if not isinstance(error, client.ApiException):
        return f"{type(error).__name__}: {error}"
    message = ""
    try:
        message = json.loads(error.body or "{}").get("message", "")
    except (ValueError, AttributeError):
        pass
    return f"HTTP {error.status} {error.reason}" + (f": {message}" if message else "")


def api_failure(error: Exception, *, what: str) -> MlbatchError:
    """The error the controller reports when an API call failed for good."""
    hint = ""
    if isinstance(error, client.ApiException) and error.status in (401, 403):
        hint = " (check the controller's RBAC: it needs jobs create/get/list/watch/delete "
        hint += "and pods get/list in the namespace)"
    return MlbatchError(f"Kubernetes API: {what} failed: {describe_api_error(error)}{hint}")


def _retry_after(error: Exception, *, limit: float) -> float | None:
    headers = getattr(error, "headers", None) or {}
    try:
        seconds = float(headers.get("Retry-After", ""))
    except ValueError:
        return None
    return min(max(seconds, 0.0), limit)
