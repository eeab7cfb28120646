"""The kubernetes executor: one Job per attempt, watched to the end, never launched twice."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes import client, watch

from mlbatch.controller.executor import Handle, StageStatus, StageTask, State, status_from_exit_code
from mlbatch.controller.kubernetes_client import (
    TRANSIENT_STATUSES,
    api_failure,
    call_with_retries,
    describe_api_error,
    load_api_client,
)
from mlbatch.controller.kubernetes_job import (
    STAGE_CONTAINER,
    KubernetesSettings,
    build_job,
    job_name,
)
from mlbatch.controller.kubernetes_pending import (
    PendingLimits,
    Stopwatch,
    Waited,
    never_waited,
    no_pod_status,
    unschedulable_status,
    waiting_status,
)
from mlbatch.errors import MlbatchError

log = logging.getLogger(__name__)

# kubernetes.io/docs/reference/labels-annotations-taints/#batch-kubernetes-io-job-name
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
MESSAGE_LIMIT = 300  # characters of a pod's termination message kept in a reason


class KubernetesExecutor:
    """Launch each stage attempt as a batch/v1 Job and map its state to a StageStatus."""

    name = "kubernetes"

    def __init__(
        self,
        settings: KubernetesSettings | None = None,
        *,
        client_factory: Callable[[], client.ApiClient] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or KubernetesSettings()
        self._client_factory = client_factory or (
            lambda: load_api_client(context=self.settings.context)
        )
        self._sleep = sleep
        self._api_client: client.ApiClient | None = None
        # How long each pending condition has lasted (a pod unschedulable, a pull failing).
        self._stopwatch = Stopwatch(clock)
        self._limits = PendingLimits(
            create_timeout_s=self.settings.create_timeout_s,
            unschedulable_timeout_s=self.settings.unschedulable_timeout_s,
            image_pull_timeout_s=self.settings.image_pull_timeout_s,
        )
        self._events_refused = False  # events could not be read (RBAC): said once

    def launch(self, task: StageTask) -> Handle:
        """Create the attempt's Job; if it already exists (a lost answer, a restart), adopt it."""
        job = build_job(task, self.settings)  # refuses file:// storage before any API call
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        what = f"create Job {namespace}/{name}"
        try:
            self._call(what, self._batch.create_namespaced_job, namespace, job)
        except client.ApiException as error:
            # 409 AlreadyExists: e.g. an earlier create did succeed but its answer was lost.
            if error.status != 409:
                raise api_failure(error, what=what) from error
            log.info("Job %s/%s already exists: adopting it", namespace, name)
            existing = self._read_job(namespace, name)
            if existing is None:
                raise MlbatchError(f"Job {namespace}/{name} was there and vanished") from error
            self._check_owner(existing, run_id=task.run_id, stage=task.stage, attempt=task.attempt)
        except urllib3.exceptions.HTTPError as error:
            raise api_failure(error, what=what) from error
        return self._handle(namespace, name)

    def find(self, run_id: str, stage: str, attempt: str) -> Handle | None:
        """The Job of this attempt, if one exists (adoption after a controller restart)."""
        namespace = self.settings.namespace
        name = job_name(run_id=run_id, stage=stage, attempt=attempt)
        job = self._read_job(namespace, name)
        if job is None:
            return None
        self._check_owner(job, run_id=run_id, stage=stage, attempt=attempt)
        return self._handle(namespace, name)

    def poll(self, handle: Handle) -> StageStatus:
        """The attempt's state from its Job's conditions, its pod's phase and container state.

        A pod that can never start (its image cannot be pulled, a Secret is missing, no
        pod is ever created, no node takes it; kubernetes_pending.py says how long each
        may last) is reported FAILED and its Job deleted, so a failed attempt never lingers.
        """
        return self._observe(handle)[0]

    def cancel(self, handle: Handle) -> None:
        """Delete the Job and, before it disappears, its pod (foreground propagation)."""
        namespace, name = handle["namespace"], handle["job"]
        what = f"delete Job {namespace}/{name}"
        try:
            # Foreground: the Job stays (with a deletionTimestamp) until its pod is gone, so
            # a relaunch never overlaps it.
            # kubernetes.io/docs/concepts/architecture/garbage-collection/#foreground-deletion
            self._call(
                what, self._batch.delete_namespaced_job, name, namespace,
                propagation_policy="Foreground",
            )  # fmt: skip
        except client.ApiException as error:
            if error.status != 404:
                raise api_failure(error, what=what) from error
        except urllib3.exceptions.HTTPError as error:
            raise api_failure(error, what=what) from error

    def wait(
        self, handle: Handle, *, timeout_s: float | None = None, poll_interval_s: float = 10.0
    ) -> StageStatus:
        """Watch the Job until the attempt finishes or timeout_s passes; the last status.

        An expired watch (410 Gone) or a dropped connection resumes from a fresh list,
        after a pause that grows while they repeat.
        """
        namespace, name = handle["namespace"], handle["job"]
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        status, _ = self._observe(handle)
        failures = 0
        while not status.state.finished:
            window = poll_interval_s
            if deadline is not None:
                window = min(window, deadline - time.monotonic())
                if window <= 0:
                    break
            # Watch from the resourceVersion of a LIST, not of the Job itself: a Job that
            # has not changed for minutes has a version the apiserver no longer keeps
            # history for, and a watch from it answers 410 Gone at once, every time. Any
            # event is a cue to read the Job (and its pod) again; a quiet window ends in a
            # read too, since pod trouble (image pulls, scheduling) leaves the Job untouched.
            version = self._list_version(namespace, name)
            since = {"resource_version": version} if version else {}
            try:
                for _ in watch.Watch().stream(
                    self._batch.list_namespaced_job, namespace,
                    field_selector=f"metadata.name={name}", **since,
                    timeout_seconds=max(1, round(window)), _request_timeout=window + 5,
                ):  # fmt: skip
                    status, version = self._observe(handle)
                    if status.state.finished:
                        return status
                failures = 0
            except client.ApiException as error:
                # 410 Gone: that version is too old to watch from; a fresh list resumes it
                # (kubernetes.io/docs/reference/using-api/api-concepts/#410-gone-responses).
                if error.status != 410 and error.status not in TRANSIENT_STATUSES:
                    raise api_failure(error, what=f"watch Job {namespace}/{name}") from error
                log.info("watch on Job %s/%s ended (HTTP %s): resuming", namespace, name,
                         error.status)  # fmt: skip
                # A pause on 410 too: a watch that keeps expiring must not spin the loop.
                failures += 1
                self._back_off(failures)
            except urllib3.exceptions.HTTPError as error:
                log.info("watch on Job %s/%s dropped (%s): resuming", namespace, name, error)
                failures += 1
                self._back_off(failures)
            status, version = self._observe(handle)
        return status

    def _observe(self, handle: Handle) -> tuple[StageStatus, str | None]:
        """The attempt's status and the resourceVersion of the Job it was read from."""
        namespace, name = handle["namespace"], handle["job"]
        job = self._read_job(namespace, name)
        if job is None:
            self._stopwatch.forget(name)
            return StageStatus(
                state=State.CANCELLED,
                reason=f"Job {namespace}/{name} no longer exists (deleted, or removed "
                "after ttlSecondsAfterFinished)",
            ), None
        pods = [] if _true_conditions(job).get("Complete") else self._list_pods(namespace, name)
        events = self._list_job_events(job) if _waits_for_its_pod(job, pods) else []
        status = job_status(
            job, pods, events=events, waited=self._stopwatch.waited, limits=self._limits
        )
        if status.state.finished:
            self._stopwatch.forget(name)
        if status.state is State.FAILED and not _job_finished(job):
            log.warning("Job %s/%s cannot run (%s): deleting it", namespace, name, status.reason)
            self.cancel(handle)
        return status, job.get("metadata", {}).get("resourceVersion")

    @property
    def _batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self._client())

    @property
    def _core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self._client())

    def _client(self) -> client.ApiClient:
        # Created on first use: rendering Jobs or building the executor needs no cluster.
        if self._api_client is None:
            self._api_client = self._client_factory()
        return self._api_client

    def _back_off(self, failures: int) -> None:
        settings = self.settings
        self._sleep(min(settings.api_retry_max_delay_s, settings.api_retry_delay_s * 2**failures))

    def _call(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One API call with retries, answered as a plain dict (the wire JSON, no models)."""
        response = call_with_retries(
            lambda: method(*args, _preload_content=False, **kwargs),
            what=what,
            attempts=self.settings.api_attempts,
            delay_s=self.settings.api_retry_delay_s,
            max_delay_s=self.settings.api_retry_max_delay_s,
            sleep=self._sleep,
        )
        return json.loads(response.data or b"{}")

    def _read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        what = f"read Job {namespace}/{name}"
        try:
            return self._call(what, self._batch.read_namespaced_job, name, namespace)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise api_failure(error, what=what) from error
        except urllib3.exceptions.HTTPError as error:
            raise api_failure(error, what=what) from error

    def _list_pods(self, namespace: str, name: str) -> list[dict[str, Any]]:
        what = f"list pods of Job {namespace}/{name}"
        try:
            answer = self._call(what, self._core.list_namespaced_pod, namespace,
                                label_selector=f"{JOB_NAME_LABEL}={name}")  # fmt: skip
        except (client.ApiException, urllib3.exceptions.HTTPError) as error:
            raise api_failure(error, what=what) from error
        return answer.get("items") or []

    def _list_version(self, namespace: str, name: str) -> str | None:
        """A current resourceVersion to watch the Job from: its list's, not its own."""
        what = f"list Job {namespace}/{name}"
        try:
            answer = self._call(what, self._batch.list_namespaced_job, namespace,
                                field_selector=f"metadata.name={name}")  # fmt: skip
        except (client.ApiException, urllib3.exceptions.HTTPError) as error:
            raise api_failure(error, what=what) from error
        return (answer.get("metadata") or {}).get("resourceVersion")

    def _list_job_events(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        """The Job's events (FailedCreate says why it has no pod); [] if unreadable.

        Best effort: without them an attempt only waits longer, so an RBAC gap or an API
        hiccup is logged, never fatal.
        """
        metadata = job.get("metadata", {})
        namespace, name = metadata.get("namespace", self.settings.namespace), metadata["name"]
        selector = f"involvedObject.kind=Job,involvedObject.name={name}"
        if metadata.get("uid"):  # not an earlier Job of the same name
            selector += f",involvedObject.uid={metadata['uid']}"
        try:
            answer = self._call(f"list events of Job {namespace}/{name}",
                                self._core.list_namespaced_event, namespace,
                                field_selector=selector)  # fmt: skip
        except (client.ApiException, urllib3.exceptions.HTTPError) as error:
            if not self._events_refused:
                log.warning("cannot read events of Job %s/%s (%s): a Job whose pods are "
                            "refused waits for its deadline", namespace, name,
                            describe_api_error(error))  # fmt: skip
            self._events_refused = True
            return []
        return answer.get("items") or []

    def _handle(self, namespace: str, name: str) -> Handle:
        return {"executor": self.name, "namespace": namespace, "job": name}

    @staticmethod
    def _check_owner(job: dict[str, Any], *, run_id: str, stage: str, attempt: str) -> None:
        labels = job.get("metadata", {}).get("labels") or {}
        expected = {
            "mlbatch.io/run": run_id,
            "mlbatch.io/stage": stage,
            "mlbatch.io/attempt": attempt,
        }
        if any(labels.get(key) != value for key, value in expected.items()):
            name = job.get("metadata", {}).get("name")
            raise MlbatchError(
                f"Job {name} exists but is not run {run_id} stage {stage} attempt {attempt} "
                "(its mlbatch.io labels differ): delete it or use another namespace"
            )


def job_status(
    job: dict[str, Any],
    pods: list[dict[str, Any]],
    *,
    events: list[dict[str, Any]] | None = None,
    waited: Waited = never_waited,
    limits: PendingLimits = PendingLimits(),
) -> StageStatus:
    """The attempt's status from its Job, the Job's pods and events (pure, but for `waited`).

    `waited(key)`: seconds since a pending condition was first seen (kubernetes_pending).
    """
    if job.get("metadata", {}).get("deletionTimestamp"):
        return StageStatus(state=State.CANCELLED, reason="Job is being deleted")
    conditions = _true_conditions(job)
    if "Complete" in conditions:
        return status_from_exit_code(0)
    pod = _latest(pods)
    if "Failed" in conditions:
        return _failed_job_status(job, conditions["Failed"], pod)
    if job.get("spec", {}).get("suspend"):
        return StageStatus(state=State.PENDING, reason="Job is suspended (queued, e.g. by Kueue)")
    if pod is None:
        return no_pod_status(job, events or [], waited=waited, limits=limits)
    return _active_pod_status(pod, waited=waited, limits=limits)


def _failed_job_status(
    job: dict[str, Any], condition: dict[str, Any], pod: dict[str, Any] | None
) -> StageStatus:
    reason, message = condition.get("reason", ""), condition.get("message", "")
    if reason == "DeadlineExceeded":
        deadline = job.get("spec", {}).get("activeDeadlineSeconds")
        text = f"DeadlineExceeded: ran longer than activeDeadlineSeconds ({deadline} s)"
        if pod is not None and pod.get("status", {}).get("phase", "Pending") == "Pending":
            text += f"; its pod never started: {_active_pod_status(pod).reason}"
        return StageStatus(state=State.FAILED, reason=text, retryable=True)
    from_pod = _failed_pod_status(pod, job) if pod is not None else None
    if from_pod is not None:
        return from_pod
    # The pod is gone (garbage-collected): the condition's message still names the code,
    # e.g. "Container stage for pod ns/p failed with exit code 2 matching FailJob rule".
    code = re.search(r"exit code (\d+)", message)
    if code:
        return status_from_exit_code(int(code.group(1)))
    return StageStatus(
        state=State.FAILED, retryable=True, reason=f"{reason or 'Failed'}: {message}".rstrip(": ")
    )


def _failed_pod_status(pod: dict[str, Any], job: dict[str, Any]) -> StageStatus | None:
    status = pod.get("status", {})
    if status.get("reason") == "Evicted":
        return StageStatus(
            state=State.FAILED, retryable=True, reason=f"Evicted: {status.get('message', '')}"
        )
    terminated = _stage_container_state(pod).get("terminated")
    if terminated is None:
        return None
    code = terminated.get("exitCode")
    if terminated.get("reason") == "OOMKilled":
        limit = _memory_limit(job)
        return StageStatus(
            state=State.FAILED, exit_code=code, retryable=True,
            reason=f"OOMKilled: the stage used more than its memory limit ({limit}); "
            "raise the stage's resources.memory",
        )  # fmt: skip
    if code is None:
        return None
    by_code = status_from_exit_code(int(code))
    last_line = _last_line(terminated.get("message", ""))
    if last_line:
        return StageStatus(
            state=by_code.state, exit_code=by_code.exit_code, retryable=by_code.retryable,
            reason=f"{by_code.reason}: {last_line}",
        )  # fmt: skip
    return by_code


def _active_pod_status(
    pod: dict[str, Any], *, waited: Waited = never_waited, limits: PendingLimits = PendingLimits()
) -> StageStatus:
    status = pod.get("status", {})
    phase = status.get("phase", "Pending")
    if phase == "Running":
        return StageStatus(
            state=State.RUNNING, reason=f"running on node {pod.get('spec', {}).get('nodeName')}"
        )
    if phase in ("Succeeded", "Failed"):
        if any(c.get("type") == "DisruptionTarget" for c in _pod_conditions(pod)):
            # podFailurePolicy ignores disruptions: the Job makes a new pod.
            cause = ": ".join(filter(None, (status.get("reason"), status.get("message"))))
            return StageStatus(
                state=State.PENDING,
                reason=f"pod disrupted ({cause or 'DisruptionTarget'}): the Job replaces it",
            )
        return StageStatus(state=State.RUNNING, reason=f"pod {phase.lower()}; Job catching up")
    for condition in _pod_conditions(pod):
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
            return unschedulable_status(pod, condition, waited=waited, limits=limits)
    waiting = _stage_container_state(pod).get("waiting") or {}
    return waiting_status(pod, waiting, waited=waited, limits=limits)


def _waits_for_its_pod(job: dict[str, Any], pods: list[dict[str, Any]]) -> bool:
    """No pod yet, and nothing else explains it: its events may (FailedCreate)."""
    if pods or _job_finished(job) or job.get("spec", {}).get("suspend"):
        return False
    return not job.get("metadata", {}).get("deletionTimestamp")


def _job_finished(job: dict[str, Any]) -> bool:
    conditions = _true_conditions(job)
    return "Complete" in conditions or "Failed" in conditions


def _true_conditions(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    conditions = job.get("status", {}).get("conditions") or []
    return {c["type"]: c for c in conditions if c.get("status") == "True" and "type" in c}


def _pod_conditions(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        c for c in pod.get("status", {}).get("conditions") or [] if c.get("status") != "Unknown"
    ]


def _latest(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest pod: after a disruption the Job makes a replacement."""

    def created(pod: dict[str, Any]) -> tuple[str, str]:
        metadata = pod.get("metadata", {})
        return metadata.get("creationTimestamp") or "", metadata.get("name") or ""

    return max(pods, key=created, default=None)


def _stage_container_state(pod: dict[str, Any]) -> dict[str, Any]:
    for container in pod.get("status", {}).get("containerStatuses") or []:
        if container.get("name") == STAGE_CONTAINER:
            return container.get("state") or {}
    return {}


def _memory_limit(job: dict[str, Any]) -> str:
    containers = job.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    for container in containers:
        if container.get("name") == STAGE_CONTAINER:
            return container.get("resources", {}).get("limits", {}).get("memory", "unset")
    return "unset"


def _last_line(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[-1][:MESSAGE_LIMIT] if lines else ""
