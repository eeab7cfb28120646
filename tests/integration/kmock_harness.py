"""An in-memory Kubernetes API server (kmock) for driving the real `kubernetes` client.

kmock's KubernetesEmulator stores objects and serves create/get/list/watch/patch/delete,
but (shared/ENVIRONMENT.md) ignores label and field selectors, never ends a watch on
`timeoutSeconds`, stamps no uid, resourceVersion or creationTimestamp, and answers a
list with the placeholder resourceVersion "..."; it has no Job controller or kubelet
either. `ApiServerDouble` fills those gaps here, in the harness, so
the executor under test stays exactly what runs against a real cluster; the tests play
the Job controller and the kubelet by writing Job and pod status themselves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import itertools
import re
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp.web
import kmock
from kubernetes import client

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


@dataclasses.dataclass(kw_only=True)
class Fault:
    """Answer the next `times` requests matching method and path with an error status."""

    method: str  # GET, POST, PATCH, DELETE
    path: re.Pattern[str]  # searched in the path and query, e.g. "/jobs\\?.*watch=true"
    status: int
    times: int = 1
    after_storing: bool = False  # the server acts on the request, then the answer is lost
    retry_after_s: int | None = None


class HarnessEmulator(kmock.KubernetesEmulator):
    """KubernetesEmulator plus selectors, watch timeouts, metadata stamps and faults."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.faults: list[Fault] = []
        self.expired_watches = 0  # how many coming watches answer 410 Gone as an ERROR event
        self._versions = itertools.count(1)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        fault = self._take_fault(request)
        if fault is not None and not fault.after_storing:
            return _status_response(fault)
        self._stamp(request)
        response = await super()._handle(request)
        return response if fault is None else _status_response(fault)

    def _take_fault(self, request: kmock.Request) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.method == request.method.value:
                if fault.path.search(request.url.path_qs):
                    fault.times -= 1
                    return fault
        return None

    def _stamp(self, request: kmock.Request) -> None:
        """What the real apiserver adds: uid, resourceVersion and creationTimestamp."""
        if not isinstance(request.data, dict) or request.method.value not in ("POST", "PATCH"):
            return
        metadata = request.data.setdefault("metadata", {})
        metadata["resourceVersion"] = str(next(self._versions))
        if request.method.value == "POST":
            metadata.setdefault("uid", str(uuid.uuid4()))
            now = datetime.datetime.now(tz=datetime.UTC)
            metadata.setdefault("creationTimestamp", now.isoformat(timespec="microseconds"))

    async def _serve_list(self, request: kmock.Request) -> Any:
        answer = await super()._serve_list(request)
        answer["items"] = [item for item in answer["items"] if _selected(request, item)]
        # A list's version is the store's current one, newer than any item's.
        answer.setdefault("metadata", {})["resourceVersion"] = str(next(self._versions))
        return answer

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        if self.expired_watches > 0:
            self.expired_watches -= 1
            expired = _status_body(410, "Expired", "too old resource version")
            yield {"type": "ERROR", "object": expired}
            return
        timeout = float(request.params.get("timeoutSeconds", "0")) or None
        events = super()._serve_watch(request)
        try:
            async with asyncio.timeout(timeout):
                async for event in events:
                    if isinstance(event, bytes) or _selected(request, event["object"]):
                        yield event
        except TimeoutError:
            return  # the server ends the watch, as kube-apiserver does after timeoutSeconds
        finally:
            await events.aclose()


class ApiServerDouble:
    """The emulator served on a loopback port from a background event-loop thread."""

    def __init__(self) -> None:
        self.emulator = HarnessEmulator()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: kmock.Server | None = None

    def __enter__(self) -> ApiServerDouble:
        self._thread.start()
        self._server = self._run(self._start())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._run(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.url).rstrip("/")

    def api_client(self) -> client.ApiClient:
        """A real `kubernetes` client pointed at the double."""
        return client.ApiClient(client.Configuration(host=self.url))

    def requests(self, method: str, path: str | re.Pattern[str]) -> list[kmock.Request]:
        """Requests received so far with this method whose path matches."""
        pattern = re.compile(re.escape(path) + "$") if isinstance(path, str) else path
        return [
            r for r in list(self.emulator._requests)
            if r.method.value == method and pattern.search(r.url.path)
        ]  # fmt: skip

    def inject(self, fault: Fault) -> None:
        self.emulator.faults.append(fault)

    # The Job controller's and kubelet's part, written through the real client.

    def set_job_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        # Raw answers (_preload_content=False): the client's models reject the partial
        # statuses tests write, while the API server stores them as given.
        client.BatchV1Api(self.api_client()).patch_namespaced_job_status(
            name, namespace, {"status": status}, _preload_content=False
        )

    def finish_job(self, namespace: str, name: str, condition: str, *, reason: str = "",
                   message: str = "") -> None:  # fmt: skip
        """Set a Job's terminal condition (Complete or Failed), as the Job controller does."""
        entry = {"type": condition, "status": "True", "reason": reason, "message": message}
        self.set_job_status(namespace, name, {"conditions": [entry]})

    def add_pod(self, namespace: str, job: str, *, suffix: str, status: dict[str, Any],
                created: str = "2026-11-26T10:00:00Z") -> dict[str, Any]:  # fmt: skip
        """Create the Job's pod with a status, as the Job controller and kubelet would."""
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{job}-{suffix}",
                "namespace": namespace,
                "labels": {JOB_NAME_LABEL: job, "job-name": job},
                "creationTimestamp": created,
            },
            "spec": {"containers": [{"name": "stage", "image": "x"}], "nodeName": "node-1"},
        }
        core = client.CoreV1Api(self.api_client())
        core.create_namespaced_pod(namespace, pod, _preload_content=False)
        core.patch_namespaced_pod_status(
            pod["metadata"]["name"], namespace, {"status": status}, _preload_content=False
        )
        return pod

    def set_pod_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Change a pod's status, as its kubelet does."""
        client.CoreV1Api(self.api_client()).patch_namespaced_pod_status(
            name, namespace, {"status": status}, _preload_content=False
        )

    def add_event(self, namespace: str, job: dict[str, Any] | str, *, reason: str, message: str,
                  uid: str | None = None) -> None:  # fmt: skip
        """Record a Warning event on a Job, as the Job controller does (FailedCreate)."""
        name = job if isinstance(job, str) else job["metadata"]["name"]
        involved = {"apiVersion": "batch/v1", "kind": "Job", "name": name,
                    "namespace": namespace}  # fmt: skip
        if uid or not isinstance(job, str):
            involved["uid"] = uid or job["metadata"]["uid"]
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{name}.{uuid.uuid4().hex[:12]}", "namespace": namespace},
            "involvedObject": involved, "reason": reason, "message": message,
            "type": "Warning", "count": 1, "lastTimestamp": "2026-11-26T10:00:00Z",
            "source": {"component": "job-controller"},
        }  # fmt: skip
        client.CoreV1Api(self.api_client()).create_namespaced_event(
            namespace, event, _preload_content=False
        )

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    async def _start(self) -> kmock.Server:
        await self.emulator.__aenter__()
        self.emulator.resources.load_bundled()
        server = kmock.Server(self.emulator)
        await server.__aenter__()
        return server

    async def _stop(self) -> None:
        assert self._server is not None
        await self._server.__aexit__(None, None, None)
        await self.emulator.__aexit__(None, None, None)


def _selected(request: kmock.Request, obj: dict[str, Any]) -> bool:
    """Equality-based label and field selectors (dotted paths such as
    `involvedObject.name` for events), the kinds the executor sends."""
    labels = obj.get("metadata", {}).get("labels") or {}
    for selector, lookup in (("labelSelector", labels.get), ("fieldSelector", _field_of(obj))):
        for term in filter(None, request.params.get(selector, "").split(",")):
            key, _, value = term.partition("=")
            if lookup(key.rstrip("=")) != value.lstrip("="):
                return False
    return True


def _field_of(obj: dict[str, Any]) -> Any:
    def lookup(path: str) -> Any:
        node: Any = obj
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    return lookup


def _status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
        "code": code, "reason": reason, "message": message,
    }  # fmt: skip


def _status_response(fault: Fault) -> aiohttp.web.Response:
    headers = {} if fault.retry_after_s is None else {"Retry-After": str(fault.retry_after_s)}
    reasons: dict[int, str] = {410: "Expired", 429: "TooManyRequests", 500: "InternalError"}
    body = _status_body(fault.status, reasons.get(fault.status, "Failure"), "injected by the test")
    return aiohttp.web.json_response(body, status=fault.status, headers=headers)
