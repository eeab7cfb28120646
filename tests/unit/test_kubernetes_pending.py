"""When a pending attempt stops waiting: the pure rules of kubernetes_pending.py, with the
time each condition has lasted handed in (the executor's Stopwatch in real use)."""

from __future__ import annotations

import pytest

from mlbatch.controller.executor import State
from mlbatch.controller.kubernetes_pending import (
    PendingLimits,
    Stopwatch,
    latest_event,
    no_pod_status,
    unschedulable_status,
    waiting_status,
)

LIMITS = PendingLimits(create_timeout_s=60, unschedulable_timeout_s=120, image_pull_timeout_s=120)
JOB = {"metadata": {"name": "r-train-1"}}
POD = {"metadata": {"name": "r-train-1-abcde"}}


def lasted(seconds: float):
    return lambda key: seconds


def failed_create(message: str, when: str = "2026-11-26T10:00:00Z") -> dict:
    return {"reason": "FailedCreate", "message": message, "lastTimestamp": when}


@pytest.mark.parametrize(("message", "retryable"), [
    ('pods "p" is forbidden: error looking up service account ml/sa: serviceaccount "sa" '
     "not found", False),
    ('pods "p" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true',
     False),
    ('admission webhook "policy.example.com" denied the request: no GPUs for team x', False),
    ('pods "p" is forbidden: exceeded quota: compute, requested: limits.memory=4Gi', True),
    ('Internal error occurred: failed calling webhook "x": connection refused', True),
])  # fmt: skip
def test_failed_create_waits_create_timeout_then_fails_with_the_api_s_words(message, retryable):
    events = [failed_create("old", "2026-11-26T09:00:00Z"), failed_create(message),
              {"reason": "SuccessfulDelete", "message": "x"}]  # fmt: skip
    early = no_pod_status(JOB, events, waited=lasted(59), limits=LIMITS)
    assert early.state is State.PENDING and early.reason == f"FailedCreate (retrying): {message}"
    late = no_pod_status(JOB, events, waited=lasted(60), limits=LIMITS)
    assert late.state is State.FAILED and late.retryable is retryable
    assert late.reason == f"FailedCreate: {message} (no pod after 60 s)"


def test_no_pod_without_a_failed_create_event_is_only_slow():
    status = no_pod_status(JOB, [], waited=lasted(10_000), limits=LIMITS)
    assert status.state is State.PENDING


def test_unschedulable_waits_its_limit_and_zero_means_the_deadline():
    condition = {"message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}
    assert unschedulable_status(POD, condition, waited=lasted(119), limits=LIMITS).state is (
        State.PENDING
    )
    failed = unschedulable_status(POD, condition, waited=lasted(120), limits=LIMITS)
    assert failed.state is State.FAILED and failed.retryable is False
    assert "Insufficient nvidia.com/gpu" in failed.reason
    forever = PendingLimits(unschedulable_timeout_s=0)
    assert unschedulable_status(POD, condition, waited=lasted(1e9), limits=forever).state is (
        State.PENDING
    )


@pytest.mark.parametrize("reason", ["ErrImageNeverPull", "InvalidImageName",
                                    "CreateContainerConfigError"])  # fmt: skip
def test_hopeless_waiting_reasons_fail_at_once(reason):
    status = waiting_status(POD, {"reason": reason, "message": "m"}, waited=lasted(0),
                            limits=LIMITS)  # fmt: skip
    assert (status.state, status.retryable, status.reason) == (State.FAILED, False, f"{reason}: m")


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff"])
def test_pull_failures_get_the_kubelets_retries_first(reason):
    waiting = {"reason": reason, "message": "rpc error: manifest unknown"}
    assert waiting_status(POD, waiting, waited=lasted(119), limits=LIMITS).state is State.PENDING
    status = waiting_status(POD, waiting, waited=lasted(120), limits=LIMITS)
    assert status.state is State.FAILED and status.retryable is False  # the tag is not there
    flaky = {"reason": reason, "message": "dial tcp 10.0.0.1:443: i/o timeout"}
    assert waiting_status(POD, flaky, waited=lasted(120), limits=LIMITS).retryable is True


def test_the_stopwatch_counts_from_the_first_sighting_and_forgets_a_jobs_clocks():
    now = [100.0]
    stopwatch = Stopwatch(lambda: now[0])
    assert stopwatch.waited("r-train-1-abcde/image-pull") == 0
    now[0] = 150.0
    assert stopwatch.waited("r-train-1-abcde/image-pull") == 50
    assert stopwatch.waited("r-train-1/no-pod") == 0
    stopwatch.forget("r-train-1")
    assert stopwatch.waited("r-train-1-abcde/image-pull") == 0


def test_the_latest_event_wins():
    older, newer = (
        failed_create("a", "2026-11-26T10:00:00Z"),
        failed_create("b", "2026-11-26T10:01:00Z"),
    )
    assert latest_event([newer, older], reason="FailedCreate") is newer
    assert latest_event([], reason="FailedCreate") is None
