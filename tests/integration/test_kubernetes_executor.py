"""The kubernetes executor driven through the real `kubernetes` client against kmock's API
server double. The tests play the Job controller and the kubelet: they write Job and pod
status themselves (kmock_harness.py lists what the double lacks and how it is filled)."""

from __future__ import annotations

import re
import threading
import time
import uuid

import pytest
from kmock_harness import ApiServerDouble, Fault
from kubernetes import client

from mlbatch.controller.executor import Resources, StageTask, State
from mlbatch.controller.kubernetes_executor import KubernetesExecutor
from mlbatch.controller.kubernetes_job import KubernetesSettings, build_job
from mlbatch.errors import BadInput, MlbatchError

RUN_ID = "20261126-153000-a1b2c3"
STAMPS = ("uid", "resourceVersion", "creationTimestamp")  # what the server adds


@pytest.fixture(scope="module")
def api_server():
    with ApiServerDouble() as server:
        yield server


@pytest.fixture
def namespace(api_server):
    """A namespace of the test's own, and no faults left behind for the next test."""
    yield f"test-{uuid.uuid4().hex[:8]}"
    api_server.emulator.faults.clear()
    api_server.emulator.expired_watches = 0


@pytest.fixture
def sleeps():
    """The executor's back-off sleeps, recorded instead of slept."""
    return []


@pytest.fixture
def settings(namespace):
    return KubernetesSettings(namespace=namespace, api_retry_delay_s=0.01)


class FakeClock:
    """The executor's monotonic clock, moved on by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def executor(api_server, settings, sleeps, clock):
    return KubernetesExecutor(settings, client_factory=api_server.api_client,
                              sleep=sleeps.append, clock=clock)  # fmt: skip


@pytest.fixture
def task():
    return StageTask(
        run_id=RUN_ID,
        run_uri=f"s3://mlbatch/runs/{RUN_ID}",
        stage="train",
        attempt="1-3fa2",
        code_version="0123456789ab",
        resources=Resources(cpu="2", memory="4Gi"),
    )


def jobs_in(api_server, namespace):
    batch = client.BatchV1Api(api_server.api_client())
    return batch.list_namespaced_job(namespace).items


def creates(api_server, namespace):
    return api_server.requests("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs")


def deletes(api_server, namespace, name):
    return api_server.requests("DELETE", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")


def test_launch_creates_the_built_job_and_poll_follows_it_to_success(
    api_server, executor, task, settings, namespace
):
    handle = executor.launch(task)
    name = f"{RUN_ID}-train-1-3fa2"
    assert handle == {"executor": "kubernetes", "namespace": namespace, "job": name}
    [request] = creates(api_server, namespace)
    sent = request.data
    assert {k: v for k, v in sent["metadata"].items() if k not in STAMPS} == build_job(
        task, settings
    )["metadata"]
    assert sent["spec"] == build_job(task, settings)["spec"]

    assert executor.poll(handle).reason == "waiting for the Job to create its pod"
    creating = {"waiting": {"reason": "ContainerCreating"}}
    api_server.add_pod(namespace, name, suffix="x1", status={
        "phase": "Pending", "containerStatuses": [{"name": "stage", "state": creating}],
    })  # fmt: skip
    assert executor.poll(handle).state is State.PENDING
    api_server.add_pod(namespace, name, suffix="x1b", status={"phase": "Running"},
                       created="2026-11-26T10:00:01Z")  # fmt: skip
    assert executor.poll(handle).state is State.RUNNING
    api_server.finish_job(namespace, name, "Complete")
    status = executor.poll(handle)
    assert (status.state, status.exit_code, status.reason) == (State.SUCCEEDED, 0, "exit code 0")


def terminated(code, *, reason="Error", message=""):
    state = {"terminated": {"exitCode": code, "reason": reason, "message": message}}
    return {"phase": "Failed", "containerStatuses": [{"name": "stage", "state": state}]}


UNSCHEDULABLE = {
    "phase": "Pending",
    "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
    }],
}  # fmt: skip
BACKOFF = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
POLICY = "Container stage for pod {ns}/{job}-p failed with exit code {code} matching FailJob rule"

FAILURES = {
    "exit-1": (terminated(1, message="Traceback...\nConnectionError: storage unreachable"),
               BACKOFF, True, 1, "exit code 1: ConnectionError: storage unreachable"),
    "exit-2": (terminated(2, message="spec.yaml line 4: unknown key 'targt'"),
               ("Failed", "PodFailurePolicy", POLICY), False, 2,
               "exit code 2 (bad spec, input or usage): spec.yaml line 4: unknown key 'targt'"),
    "exit-3": (terminated(3), ("Failed", "PodFailurePolicy", POLICY), False, 3,
               "exit code 3 (validation or quality gate failed)"),
    "exit-4": (terminated(4), ("Failed", "PodFailurePolicy", POLICY), False, 4,
               "exit code 4 (superseded by another attempt)"),
    "exit-2-pod-gone": (None, ("Failed", "PodFailurePolicy", POLICY), False, 2,
                        "exit code 2 (bad spec, input or usage)"),
    "oom": (terminated(137, reason="OOMKilled"), BACKOFF, True, 137,
            "OOMKilled: the stage used more than its memory limit (4Gi); raise the stage's "
            "resources.memory"),
    "evicted": ({"phase": "Failed", "reason": "Evicted",
                 "message": "The node was low on resource: ephemeral-storage."},
                BACKOFF, True, None, "Evicted: The node was low on resource: ephemeral-storage."),
    "deadline": (UNSCHEDULABLE, ("Failed", "DeadlineExceeded", "Job was active longer than "
                 "specified deadline"), True, None,
                 "DeadlineExceeded: ran longer than activeDeadlineSeconds (3600 s); its pod never "
                 "started: Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."),
}  # fmt: skip


@pytest.mark.parametrize(("pod_status", "condition", "retryable", "exit_code", "reason"),
                         list(FAILURES.values()), ids=list(FAILURES))  # fmt: skip
def test_each_failure_is_explained_with_the_right_retryability(
    api_server, executor, task, namespace, pod_status, condition, retryable, exit_code, reason
):
    handle = executor.launch(task)
    name = handle["job"]
    if pod_status is not None:
        api_server.add_pod(namespace, name, suffix="p", status=pod_status)
    kind, why, message = condition
    code = exit_code if exit_code is not None else 0
    api_server.finish_job(namespace, name, kind, reason=why,
                          message=message.format(ns=namespace, job=name, code=code))  # fmt: skip
    status = executor.poll(handle)
    assert status.state is State.FAILED
    assert (status.reason, status.retryable, status.exit_code) == (reason, retryable, exit_code)
    assert jobs_in(api_server, namespace), "a finished Job stays for ttlSecondsAfterFinished"


def waiting_pod(api_server, namespace, job, *, reason, message, suffix="p"):
    state = {"waiting": {"reason": reason, "message": message}}
    api_server.add_pod(namespace, job, suffix=suffix, status={
        "phase": "Pending", "containerStatuses": [{"name": "stage", "state": state}],
    })  # fmt: skip


@pytest.mark.parametrize(("waiting", "retryable"), [
    ({"reason": "ErrImageNeverPull", "message": 'Container image "localhost/mlbatch-train:0123" '
      "is not present with pull policy of Never"}, False),
    ({"reason": "InvalidImageName", "message": 'Failed to apply default image tag "x::y"'}, False),
    ({"reason": "CreateContainerConfigError",
      "message": 'secret "mlbatch-credentials" not found'}, False),
])  # fmt: skip
def test_a_pod_that_can_never_start_fails_the_attempt_at_once_and_its_job_is_deleted(
    api_server, executor, task, namespace, waiting, retryable
):
    handle = executor.launch(task)
    waiting_pod(api_server, namespace, handle["job"], **waiting)
    status = executor.poll(handle)
    assert status.state is State.FAILED and status.retryable is retryable
    assert status.reason == f"{waiting['reason']}: {waiting['message']}"
    [delete] = deletes(api_server, namespace, handle["job"])
    assert delete.params["propagationPolicy"] == "Foreground"
    assert jobs_in(api_server, namespace) == []


@pytest.mark.parametrize(("message", "retryable"), [
    ('failed to pull "registry.example.com/mlbatch-train:0123": manifest unknown', False),
    ('failed to pull "registry.example.com/mlbatch-train:0123": dial tcp: i/o timeout', True),
])  # fmt: skip
def test_a_failing_image_pull_gets_the_kubelets_retries_then_fails(
    api_server, executor, task, namespace, clock, message, retryable
):
    handle = executor.launch(task)
    name = handle["job"]
    waiting_pod(api_server, namespace, name, reason="ErrImagePull", message=message)
    first = executor.poll(handle)
    assert first.state is State.PENDING and "the kubelet retries" in first.reason
    clock.advance(60)  # the kubelet backs off: the same pod, now ImagePullBackOff
    state = {"waiting": {"reason": "ImagePullBackOff", "message": message}}
    api_server.set_pod_status(namespace, f"{name}-p", {
        "phase": "Pending", "containerStatuses": [{"name": "stage", "state": state}],
    })  # fmt: skip
    assert executor.poll(handle).state is State.PENDING
    assert deletes(api_server, namespace, name) == [], "no Job deleted within the grace"
    clock.advance(61)  # 121 s since the first failed pull: past image_pull_timeout_s (120)
    status = executor.poll(handle)
    assert status.state is State.FAILED and status.retryable is retryable
    assert status.reason.startswith(f"ImagePullBackOff: {message}")
    assert len(deletes(api_server, namespace, name)) == 1


MISSING_SA = ('Error creating: pods "{job}-x" is forbidden: error looking up service account '
              '{ns}/mlbatch-stage: serviceaccount "mlbatch-stage" not found')  # fmt: skip
QUOTA = ('Error creating: pods "{job}-x" is forbidden: exceeded quota: compute, requested: '
         "limits.memory=4Gi, used: limits.memory=30Gi, limited: limits.memory=32Gi")  # fmt: skip


@pytest.mark.parametrize(("message", "retryable"), [(MISSING_SA, False), (QUOTA, True)],
                         ids=["missing-service-account", "quota"])  # fmt: skip
def test_a_job_whose_pod_is_never_created_fails_after_create_timeout(
    api_server, executor, task, namespace, clock, message, retryable
):
    handle = executor.launch(task)
    name = handle["job"]
    [job] = jobs_in(api_server, namespace)
    text = message.format(job=name, ns=namespace)
    # Events of another Job, and of an earlier Job of the same name, are not this one's.
    api_server.add_event(namespace, "another-job", reason="FailedCreate", message="other")
    api_server.add_event(namespace, name, reason="FailedCreate", message="old", uid="old-uid")
    assert executor.poll(handle).reason == "waiting for the Job to create its pod"
    api_server.add_event(namespace, name, reason="FailedCreate", message=text,
                         uid=job.metadata.uid)  # fmt: skip
    pending = executor.poll(handle)
    assert pending.state is State.PENDING and pending.reason == f"FailedCreate (retrying): {text}"
    clock.advance(61)  # past create_timeout_s (60) since the Job was first seen without a pod
    status = executor.poll(handle)
    assert status.state is State.FAILED and status.retryable is retryable
    assert status.reason.startswith(f"FailedCreate: {text}")
    assert len(deletes(api_server, namespace, name)) == 1
    reads = api_server.requests("GET", f"/api/v1/namespaces/{namespace}/events")
    assert reads and all("involvedObject.name=" + name in r.params["fieldSelector"] for r in reads)


def test_a_job_without_a_pod_and_without_events_keeps_waiting(
    api_server, executor, task, namespace, clock
):
    handle = executor.launch(task)
    clock.advance(3000)
    status = executor.poll(handle)
    assert status.state is State.PENDING and deletes(api_server, namespace, handle["job"]) == []


def test_unreadable_events_only_mean_waiting_longer(api_server, executor, task, namespace, clock):
    handle = executor.launch(task)
    [job] = jobs_in(api_server, namespace)
    api_server.add_event(namespace, handle["job"], reason="FailedCreate", message="refused",
                         uid=job.metadata.uid)  # fmt: skip
    events = re.compile(f"/namespaces/{namespace}/events")
    api_server.inject(Fault(method="GET", path=events, status=403, times=5))
    clock.advance(100)
    assert executor.poll(handle).state is State.PENDING


def test_an_unschedulable_pod_waits_for_capacity_then_fails(
    api_server, executor, task, namespace, clock
):
    handle = executor.launch(task)
    api_server.add_pod(namespace, handle["job"], suffix="p", status=UNSCHEDULABLE)
    status = executor.poll(handle)
    assert status.state is State.PENDING
    assert status.reason == "Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    clock.advance(100)
    assert executor.poll(handle).state is State.PENDING
    assert len(jobs_in(api_server, namespace)) == 1
    clock.advance(21)  # 121 s: past unschedulable_timeout_s (120)
    status = executor.poll(handle)
    assert status.state is State.FAILED and status.retryable is False
    assert status.reason.startswith(
        "Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu. (unschedulable "
        "for 121 s"
    )
    assert len(deletes(api_server, namespace, handle["job"])) == 1


def test_an_unschedulable_timeout_of_zero_waits_for_the_deadline(
    api_server, settings, task, namespace, clock
):
    settings = KubernetesSettings(namespace=namespace, unschedulable_timeout_s=0)
    executor = KubernetesExecutor(settings, client_factory=api_server.api_client, clock=clock)
    handle = executor.launch(task)
    api_server.add_pod(namespace, handle["job"], suffix="p", status=UNSCHEDULABLE)
    clock.advance(3000)
    assert executor.poll(handle).state is State.PENDING


def test_an_evicted_pod_is_replaced_and_the_replacement_followed(
    api_server, executor, task, namespace
):
    handle = executor.launch(task)
    api_server.add_pod(namespace, handle["job"], suffix="old", status={
        "phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory.",
        "conditions": [{"type": "DisruptionTarget", "status": "True",
                        "reason": "TerminationByKubelet"}],
    })  # fmt: skip
    status = executor.poll(handle)
    assert status.state is State.PENDING
    assert "the Job replaces it" in status.reason and "Evicted" in status.reason
    api_server.add_pod(namespace, handle["job"], suffix="new", status={"phase": "Running"},
                       created="2026-11-26T10:05:00Z")  # fmt: skip
    assert executor.poll(handle).state is State.RUNNING


def test_throttling_and_server_errors_are_retried_with_backoff(
    api_server, executor, task, namespace, sleeps
):
    jobs = re.compile(f"/namespaces/{namespace}/jobs$")
    api_server.inject(Fault(method="POST", path=jobs, status=429, times=2, retry_after_s=3))
    handle = executor.launch(task)
    assert sleeps == [3.0, 3.0], "Retry-After is honoured"
    assert len(creates(api_server, namespace)) == 3
    sleeps.clear()
    api_server.inject(Fault(method="GET", path=re.compile(f"/jobs/{handle['job']}$"), status=500))
    api_server.inject(Fault(method="GET", path=re.compile(f"/namespaces/{namespace}/pods"),
                            status=503, times=2))  # fmt: skip
    assert executor.poll(handle).state is State.PENDING
    assert len(sleeps) == 3 and all(0 < s <= 0.04 for s in sleeps), sleeps


def test_a_create_whose_answer_was_lost_is_adopted_never_repeated(
    api_server, executor, task, namespace
):
    jobs = re.compile(f"/namespaces/{namespace}/jobs$")
    api_server.inject(Fault(method="POST", path=jobs, status=500, after_storing=True))
    handle = executor.launch(task)
    assert len(creates(api_server, namespace)) == 2  # the retry met 409 AlreadyExists
    assert [j.metadata.name for j in jobs_in(api_server, namespace)] == [handle["job"]]


def test_persistent_api_errors_end_in_one_clear_line(api_server, executor, task, namespace):
    jobs = re.compile(f"/namespaces/{namespace}/jobs$")
    api_server.inject(Fault(method="POST", path=jobs, status=500, times=100))
    with pytest.raises(MlbatchError, match=r"create Job .* failed: HTTP 500 .*injected"):
        executor.launch(task)
    assert len(creates(api_server, namespace)) == executor.settings.api_attempts


def test_forbidden_is_not_retried_and_points_at_rbac(api_server, executor, task, namespace):
    jobs = re.compile(f"/namespaces/{namespace}/jobs$")
    api_server.inject(Fault(method="POST", path=jobs, status=403))
    with pytest.raises(MlbatchError, match="HTTP 403.*RBAC"):
        executor.launch(task)
    assert len(creates(api_server, namespace)) == 1


def test_a_restarted_controller_adopts_the_job_instead_of_launching_twice(
    api_server, executor, task, namespace, settings
):
    assert executor.find(RUN_ID, "train", "1-3fa2") is None
    handle = executor.launch(task)
    restarted = KubernetesExecutor(settings, client_factory=api_server.api_client)
    assert restarted.find(RUN_ID, "train", "1-3fa2") == handle
    assert restarted.launch(task) == handle
    assert len(jobs_in(api_server, namespace)) == 1


def test_a_job_of_another_attempt_is_never_adopted(api_server, executor, task, namespace, settings):
    impostor = build_job(task, settings)
    impostor["metadata"]["labels"]["mlbatch.io/attempt"] = "2-0000"
    client.BatchV1Api(api_server.api_client()).create_namespaced_job(namespace, impostor)
    with pytest.raises(MlbatchError, match="labels differ"):
        executor.launch(task)
    with pytest.raises(MlbatchError, match="labels differ"):
        executor.find(RUN_ID, "train", "1-3fa2")


def test_cancel_deletes_the_job_in_the_foreground(api_server, executor, task, namespace):
    handle = executor.launch(task)
    executor.cancel(handle)
    [delete] = deletes(api_server, namespace, handle["job"])
    assert delete.params["propagationPolicy"] == "Foreground"
    status = executor.poll(handle)
    assert status.state is State.CANCELLED and "no longer exists" in status.reason
    executor.cancel(handle)  # already gone: nothing to do


def finish_later(api_server, namespace, name, *, after_s=0.3):
    timer = threading.Timer(after_s, api_server.finish_job, (namespace, name, "Complete"))
    timer.start()
    return timer


def test_wait_follows_the_watch_to_the_end(api_server, executor, task, namespace):
    handle = executor.launch(task)
    timer = finish_later(api_server, namespace, handle["job"])
    status = executor.wait(handle, timeout_s=20, poll_interval_s=10)
    timer.join()
    assert status.state is State.SUCCEEDED
    lists, watches = lists_and_watches(api_server, namespace)
    assert [w.params["fieldSelector"] for w in watches] == [f"metadata.name={handle['job']}"]
    assert len(lists) == 1


def lists_and_watches(api_server, namespace):
    """GETs of the jobs collection: plain lists, and watches (in the order sent)."""
    gets = api_server.requests("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs")
    lists = [g for g in gets if g.params.get("watch") != "true"]
    return lists, [g for g in gets if g.params.get("watch") == "true"]


def test_wait_resumes_after_the_watch_expires(api_server, executor, task, namespace):
    handle = executor.launch(task)
    executor.poll(handle)  # the client's API modules load lazily (seconds on a busy CI box)
    # One watch refused outright with 410, one expiring mid-stream with an ERROR event.
    watch = re.compile(f"/namespaces/{namespace}/jobs\\?.*watch=true")
    refused = Fault(method="GET", path=watch, status=410)
    api_server.inject(refused)
    api_server.emulator.expired_watches = 1
    timer = finish_later(api_server, namespace, handle["job"], after_s=2)
    status = executor.wait(handle, timeout_s=20, poll_interval_s=10)
    timer.join()
    assert status.state is State.SUCCEEDED
    assert refused.times == 0 and api_server.emulator.expired_watches == 0, "both expired"
    lists, watches = lists_and_watches(api_server, namespace)
    assert len(watches) == 3 and len(lists) == len(watches)
    versions = [w.params.get("resourceVersion") for w in watches]
    assert all(versions), f"each watch resumes from the version just listed: {versions}"


def test_a_watch_that_keeps_expiring_is_paused_and_re_listed_not_spun(
    api_server, executor, task, namespace, sleeps
):
    """A Job unchanged for minutes has a resourceVersion the apiserver keeps no history
    for: a watch from it answers 410 Gone at once, every time. The executor watches from
    a fresh list's version instead, and pauses (growing) while 410s repeat."""
    handle = executor.launch(task)
    executor.poll(handle)  # the client's API modules load lazily (seconds on a busy CI box)
    watch = re.compile(f"/namespaces/{namespace}/jobs\\?.*watch=true")
    expired = Fault(method="GET", path=watch, status=410, times=4)
    api_server.inject(expired)
    status = executor.wait(handle, timeout_s=3, poll_interval_s=1)
    assert status.state is State.PENDING and expired.times == 0
    assert len(sleeps) == 4 and sleeps == sorted(sleeps), sleeps  # paused, growing
    lists, watches = lists_and_watches(api_server, namespace)
    assert len(watches) >= 5  # four expired, then at least one that ran its window
    assert len(lists) == len(watches), "every watch starts from a fresh list"
    job_version = jobs_in(api_server, namespace)[0].metadata.resource_version
    versions = [w.params["resourceVersion"] for w in watches]
    assert job_version not in versions and len(set(versions)) == len(versions), versions


def test_wait_returns_the_last_status_at_its_timeout(api_server, executor, task, namespace):
    handle = executor.launch(task)
    api_server.add_pod(namespace, handle["job"], suffix="p", status={"phase": "Running"})
    started = time.monotonic()
    status = executor.wait(handle, timeout_s=1.5, poll_interval_s=1)
    assert status.state is State.RUNNING
    assert 1.5 <= time.monotonic() - started < 5


def test_file_storage_is_refused_before_any_api_call(task):
    def no_cluster():
        raise AssertionError("the executor must not reach for a cluster")

    executor = KubernetesExecutor(KubernetesSettings(), client_factory=no_cluster)
    local = StageTask(**{**task.__dict__, "run_uri": f"file:///home/me/runs/{RUN_ID}"})
    with pytest.raises(BadInput, match="needs s3:// storage"):
        executor.launch(local)


def test_the_client_is_made_once_and_only_when_first_needed(api_server, settings, task):
    made = []

    def factory():
        made.append(1)
        return api_server.api_client()

    executor = KubernetesExecutor(settings, client_factory=factory)
    assert made == []
    handle = executor.launch(task)
    executor.poll(handle)
    executor.cancel(handle)
    assert made == [1]


def test_the_client_comes_from_kubeconfig_and_its_context(
    api_server, task, namespace, tmp_path, monkeypatch
):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(f"""
apiVersion: v1
kind: Config
current-context: elsewhere
clusters:
- {{name: double, cluster: {{server: "{api_server.url}"}}}}
- {{name: nowhere, cluster: {{server: "http://127.0.0.1:9"}}}}
users:
- {{name: tester, user: {{token: not-a-secret}}}}
contexts:
- {{name: double, context: {{cluster: double, user: tester}}}}
- {{name: elsewhere, context: {{cluster: nowhere, user: tester}}}}
""")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    executor = KubernetesExecutor(KubernetesSettings(namespace=namespace, context="double"))
    handle = executor.launch(task)
    assert executor.poll(handle).state is State.PENDING
    [request] = creates(api_server, namespace)
    assert request.headers["Authorization"] == "Bearer not-a-secret"


def test_no_cluster_configured_is_a_clear_error(task, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(BadInput, match="no Kubernetes cluster configured"):
        KubernetesExecutor(KubernetesSettings()).launch(task)


def test_an_unreachable_api_server_is_retried_then_reported(task, sleeps):
    settings = KubernetesSettings(api_attempts=3, api_retry_delay_s=0.01)
    nowhere = client.Configuration(host="http://127.0.0.1:9")
    nowhere.retries = False  # the executor's own retries, not urllib3's, are under test
    executor = KubernetesExecutor(
        settings, client_factory=lambda: client.ApiClient(nowhere), sleep=sleeps.append
    )
    with pytest.raises(MlbatchError, match="create Job .* failed"):
        executor.launch(task)
    assert len(sleeps) == 2
