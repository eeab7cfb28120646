"""Why an attempt has not started yet, and when waiting longer no longer helps.

A Job whose pod is never created (a missing ServiceAccount, a quota, a webhook), a pod
no node can take, or an image that cannot be pulled would otherwise wait out the Job's
activeDeadlineSeconds (an hour by default) and then be retried. Each of these is given
a bounded wait instead (KubernetesSettings: create_timeout_s, unschedulable_timeout_s,
image_pull_timeout_s), counted from when this controller first saw it; then the attempt
fails with Kubernetes' own reason and message. A restarted controller starts its clocks
again, so a wait is at most twice its limit.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from mlbatch.controller.executor import StageStatus, State

# Seconds since a condition (a key such as "<pod>/unschedulable") was first seen.
Waited = Callable[[str], float]

# Waiting reasons of the stage container that fail the attempt at once (True: a new
# attempt may help). kubernetes.io/docs/concepts/containers/images/#imagepullbackoff
FAIL_AT_ONCE = {
    "ErrImageNeverPull": False,  # imagePullPolicy Never and the image is not on the node
    "InvalidImageName": False,
    "CreateContainerConfigError": False,  # a missing Secret, ConfigMap or key
    "CreateContainerError": True,
}
# Pull failures the kubelet retries itself (with back-off): they get image_pull_timeout_s.
PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff"})
# A pull failure whose message says the image or access is missing: a retry pulls the
# same reference with the same credentials.
PULL_HOPELESS = re.compile(r"not found|manifest unknown|unauthorized|denied|insufficient_scope",
                           re.I)  # fmt: skip
# FailedCreate messages (the Job controller's, quoting the API's refusal) that a new
# attempt would meet again; anything else (a quota, an unreachable webhook) may clear.
CREATE_HOPELESS = re.compile(
    r"serviceaccount .* not found|violates PodSecurity|admission webhook .* denied|forbidden: "
    r"unable to validate against any (pod )?security",
    re.I,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PendingLimits:
    """The waits, in seconds (see KubernetesSettings for each one's meaning and default)."""

    create_timeout_s: float = 60.0
    unschedulable_timeout_s: float = 120.0  # 0: wait for activeDeadlineSeconds
    image_pull_timeout_s: float = 120.0


class Stopwatch:
    """When this controller first saw each condition; `waited(key)` starts its clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._since: dict[str, float] = {}

    def waited(self, key: str) -> float:
        now = self._clock()
        return now - self._since.setdefault(key, now)

    def forget(self, prefix: str) -> None:
        """Drop the clocks of one Job's conditions (it finished, or was deleted)."""
        for key in [k for k in self._since if k.startswith(prefix)]:
            del self._since[key]


def never_waited(key: str) -> float:
    """The first look at everything (the default of a pure status mapping)."""
    return 0.0


def no_pod_status(
    job: dict[str, Any], events: Iterable[dict[str, Any]], *, waited: Waited,
    limits: PendingLimits,
) -> StageStatus:  # fmt: skip
    """A Job without a pod: still being created, or refused (its FailedCreate events)."""
    name = job.get("metadata", {}).get("name", "")
    elapsed = waited(f"{name}/no-pod")
    refused = latest_event(events, reason="FailedCreate")
    if refused is None:
        return StageStatus(state=State.PENDING, reason="waiting for the Job to create its pod")
    message = refused.get("message", "")
    if elapsed < limits.create_timeout_s:
        return StageStatus(state=State.PENDING, reason=f"FailedCreate (retrying): {message}")
    return StageStatus(
        state=State.FAILED,
        retryable=not CREATE_HOPELESS.search(message),
        reason=f"FailedCreate: {message} (no pod after {elapsed:.0f} s)",
    )


def unschedulable_status(
    pod: dict[str, Any], condition: dict[str, Any], *, waited: Waited, limits: PendingLimits
) -> StageStatus:
    """A pod no node can take: PENDING for a while (capacity may free up), then FAILED.

    Not retryable: a new attempt asks for the same resources, nodeSelector and
    tolerations, and no Kubernetes answer tells "busy" from "nobody has a GPU".
    """
    reason = f"Unschedulable: {condition.get('message', '')}"
    elapsed = waited(f"{_pod_name(pod)}/unschedulable")
    if limits.unschedulable_timeout_s <= 0 or elapsed < limits.unschedulable_timeout_s:
        return StageStatus(state=State.PENDING, reason=reason)
    return StageStatus(
        state=State.FAILED,
        reason=f"{reason} (unschedulable for {elapsed:.0f} s; "
        "unschedulable_timeout_s is the limit)",
    )


def waiting_status(
    pod: dict[str, Any], waiting: dict[str, Any], *, waited: Waited, limits: PendingLimits
) -> StageStatus:
    """The stage container is waiting: creating, pulling, or stuck."""
    why = waiting.get("reason", "")
    text = f"{why}: {waiting.get('message', '')}".rstrip(": ")
    if why in FAIL_AT_ONCE:
        return StageStatus(state=State.FAILED, retryable=FAIL_AT_ONCE[why], reason=text)
    if why in PULL_FAILURES:
        elapsed = waited(f"{_pod_name(pod)}/image-pull")
        if elapsed < limits.image_pull_timeout_s:
            return StageStatus(state=State.PENDING, reason=f"{text} (the kubelet retries)")
        return StageStatus(
            state=State.FAILED,
            retryable=not PULL_HOPELESS.search(waiting.get("message", "")),
            reason=f"{text} (failing for {elapsed:.0f} s)",
        )
    return StageStatus(state=State.PENDING, reason=why or "pod pending")


def latest_event(events: Iterable[dict[str, Any]], *, reason: str) -> dict[str, Any] | None:
    """The most recent event with this reason (core/v1 or events.k8s.io field names)."""

    def when(event: dict[str, Any]) -> str:
        series = event.get("series") or {}
        return (
            event.get("lastTimestamp") or series.get("lastObservedTime")
            or event.get("eventTime") or event.get("metadata", {}).get("creationTimestamp")
            or ""
        )  # fmt: skip

    matching = [e for e in events if e.get("reason") == reason]
    return max(matching, key=when, default=None)


def _pod_name(pod: dict[str, Any]) -> str:
    return pod.get("metadata", {}).get("name", "")
