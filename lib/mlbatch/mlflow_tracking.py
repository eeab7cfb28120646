"""Optional MLflow tracking, driven by the controller: a run becomes an MLflow run.

The controller asks for a sync when the run starts, after each stage commits and when the
run ends; the mirror is made from what the run folder holds (mlflow_export.py), so local,
container and Kubernetes runs are mirrored alike and no stage knows MLflow. mlbatch's run
folder and registry stay the source of truth: the export runs on a worker thread, so the
run never waits on MLflow except at its end (at most FINAL_WAIT_S), and a server that is
down, slow or failing costs one warning line and a count in run.json (`mlflow.errors`),
never the run.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from urllib.parse import urlsplit, urlunsplit

from mlbatch.mlflow_export import MlflowExport
from mlbatch.runs import SPEC_NAME, RunLayout
from mlbatch.spec import PipelineSpec

URI_ENV = "MLFLOW_TRACKING_URI"
FINAL_WAIT_S = 120.0  # at the run's end, the longest the controller waits for the mirror


def for_run(
    layout: RunLayout, spec: PipelineSpec, *, uri: str | None = None
) -> MlflowTracking | None:
    """The run's tracking: None unless `uri`, the spec or MLFLOW_TRACKING_URI names a
    server (`uri`, given by a person, wins over the spec's `enabled: false`)."""
    settings = spec.tracking.mlflow
    if uri is None and settings is not None and not settings.enabled:
        return None
    uri = uri or (settings and settings.uri) or os.environ.get(URI_ENV)
    if not uri:
        return None
    experiment = (settings and settings.experiment) or spec.name
    return MlflowTracking(MlflowExport(layout, spec, uri=uri, experiment=experiment))


def redacted(uri: str) -> str:
    """The URI without user and password, as run.json and messages show it."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=host))


class MlflowTracking:
    """Syncs an MlflowExport on a worker thread; never raises, never blocks but at the end.

    After a failure the worker waits for the run's end to try again (the export is
    idempotent, so that one catches up), so a server that hangs costs at most two timeouts.
    """

    def __init__(self, export: MlflowExport):
        self.export = export
        self.uri = redacted(export.uri)
        self._record = {"uri": self.uri, "errors": 0, "export_s": 0.0}
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[dict, bool]] = queue.Queue()
        self._ended = threading.Event()  # the final sync is done (or gave up)
        self._worker: threading.Thread | None = None
        self._suspended = False
        self._warned = False

    def sync(
        self, state: dict, *, final: bool = False, wait_s: float | None = FINAL_WAIT_S
    ) -> None:
        """Queue a sync of the run as `state` (run.json) has it; the final one (the run
        ended) waits for the worker, at most wait_s (None: as long as it takes)."""
        keys = ("created", "spec", "state", "finished") if final else ("created", "spec")
        view = {key: state.get(key) for key in keys} | {"stages": list(state["stages"])}
        view["spec"] = view["spec"] or SPEC_NAME
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="mlflow-export", daemon=True)
            self._worker.start()
        self._queue.put((view, final))
        if final:
            started = time.monotonic()
            if not self._ended.wait(wait_s):
                self._failed(f"the export was still going after {wait_s:.0f}s; left unfinished")
            with self._lock:  # what the mirror added to the run's wall time
                self._record["final_wait_s"] = round(time.monotonic() - started, 3)

    def record(self) -> dict:
        """For run.json: where, the MLflow run, the seconds spent and the failures."""
        with self._lock:
            return dict(self._record)

    def _work(self) -> None:
        while True:
            view, final = self._queue.get()
            if not self._suspended or final:
                started = time.monotonic()
                try:
                    self.export.sync(view, final=final)
                    self._suspended = False
                    with self._lock:
                        self._record.update(self._where())
                except Exception as error:  # anything at all: the mirror never fails the run
                    self._suspended = True
                    self._failed(" ".join(f"{type(error).__name__}: {error}".split()))
                with self._lock:
                    spent = self._record["export_s"] + time.monotonic() - started
                    self._record["export_s"] = round(spent, 3)
            if final:
                self._ended.set()
                return

    def _where(self) -> dict:
        where = {"experiment_id": self.export.experiment_id, "run_id": self.export.run_id}
        if self.uri.startswith(("http://", "https://")):
            where["url"] = (f"{self.uri.rstrip('/')}/#/experiments/{self.export.experiment_id}"
                            f"/runs/{self.export.run_id}")  # fmt: skip
        return where

    def _failed(self, reason: str) -> None:
        reason = reason.replace(self.export.uri, self.uri)[:500]
        with self._lock:
            self._record["errors"] += 1
            self._record["last_error"] = reason
            warn, self._warned = not self._warned, True
        if warn:
            print(f"mlbatch: warning: MLflow export to {self.uri} failed ({reason[:200]}); the "
                  "run goes on without it, failures are counted in run.json (mlflow.errors)",
                  file=sys.stderr, flush=True)  # fmt: skip
