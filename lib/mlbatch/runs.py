"""Run layout and run records: run ids, the immutable spec.json, the controller's run.json.

<storage>/runs/<run-id>/
  spec.json                 immutable, written once before any stage
  spec.<n>.json             a resume's edited spec (immutable too; run.json names the latest)
  run.json                  controller state: attempts, handles, timings, outcome
  <stage>/_manifest.json    the commit
  <stage>/attempts/<id>/    outputs and log of one attempt
  <stage>/scratch/<id>/     an attempt's working state that is not output (Tune's)
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from mlbatch import storage
from mlbatch.errors import BadInput
from mlbatch.logs import LOG_DIR

RUN_ID_PATTERN = re.compile(r"^\d{8}-\d{6}-[a-z0-9]{6}$")
ATTEMPT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,15}$")
SPEC_NAME = "spec.json"
SPEC_FILE_PATTERN = re.compile(r"^spec(\.[1-9][0-9]{0,5})?\.json$")
SPEC_ENV = "MLBATCH_SPEC"  # set by the controller when attempts read a revision


def new_run_id(now: datetime | None = None) -> str:
    """Lowercase `YYYYMMDD-HHMMSS-xxxxxx`: sortable by time, path-safe, valid in Job names."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def new_attempt_id(number: int) -> str:
    """`<n>-<4 hex>`: ordered within a stage, unique even if two controllers race."""
    return f"{number}-{secrets.token_hex(2)}"


def check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.match(run_id):
        raise BadInput(f"run id {run_id!r} is not of the form YYYYMMDD-HHMMSS-xxxxxx")
    return run_id


@dataclass(frozen=True)
class RunLayout:
    """Where everything of one run lives."""

    storage_uri: str
    run_id: str

    @classmethod
    def from_run_uri(cls, run_uri: str) -> RunLayout:
        root, sep, run_id = run_uri.rstrip("/").rpartition("/runs/")
        if not sep:
            raise BadInput(f"{run_uri!r} is not a run URI (<storage>/runs/<run-id>)")
        return cls(storage_uri=root, run_id=check_run_id(run_id))

    @property
    def uri(self) -> str:
        return storage.join(self.storage_uri, "runs", self.run_id)

    @property
    def spec_uri(self) -> str:
        return storage.join(self.uri, "spec.json")

    @property
    def state_uri(self) -> str:
        return storage.join(self.uri, "run.json")

    @property
    def cancel_uri(self) -> str:
        """Created by `mlbatch cancel`; the controller stops the run when it sees it."""
        return storage.join(self.uri, "cancel.json")

    def manifest_uri(self, stage: str) -> str:
        return storage.join(self.uri, stage, "_manifest.json")

    def attempt_uri(self, stage: str, attempt: str) -> str:
        return storage.join(self.uri, stage, "attempts", attempt)

    def scratch_uri(self, stage: str, attempt: str) -> str:
        """An attempt's working files that must outlive its pod but are not outputs (Tune's
        state); gc removes those of attempts no manifest adopted."""
        return storage.join(self.uri, stage, "scratch", attempt)

    def log_prefix(self, stage: str, attempt: str) -> str:
        return storage.join(self.attempt_uri(stage, attempt), LOG_DIR)


def runs_prefix(storage_uri: str) -> str:
    return storage.join(storage_uri, "runs")


def write_spec(layout: RunLayout, spec: dict) -> None:
    """Write the run's spec once; a run id that already has one is refused."""
    data = json.dumps(spec, indent=2).encode()  # key order matters (etl.sources)
    if not storage.create_exclusive(layout.spec_uri, data):
        raise BadInput(f"run {layout.run_id} already exists at {layout.uri}")


def read_spec(layout: RunLayout, name: str = SPEC_NAME) -> dict:
    """The run's spec.json, or one of its revisions (`spec.<n>.json`, see write_revision)."""
    try:
        return json.loads(storage.read_bytes(spec_file_uri(layout, name)))
    except FileNotFoundError:
        raise BadInput(f"no run at {layout.uri} ({name} is missing)") from None


def current_spec_name(layout: RunLayout) -> str:
    """The spec the run's next attempts use: its latest revision, recorded in run.json."""
    return (read_state(layout) or {}).get("spec", SPEC_NAME)


def spec_file_uri(layout: RunLayout, name: str = SPEC_NAME) -> str:
    if not SPEC_FILE_PATTERN.match(name):
        raise BadInput(f"{name!r} is not a spec of a run (spec.json or spec.<n>.json)")
    return storage.join(layout.uri, name)


def attempt_spec_name() -> str:
    """The spec this attempt was launched with: spec.json, or the revision the controller
    named in MLBATCH_SPEC after a resume that edited the spec."""
    return os.environ.get(SPEC_ENV) or SPEC_NAME


def write_revision(layout: RunLayout, spec: dict) -> str:
    """A resume's edited spec, written once beside spec.json (which never changes)."""
    data, number = json.dumps(spec, indent=2).encode(), 1
    while not storage.create_exclusive(spec_file_uri(layout, f"spec.{number}.json"), data):
        number += 1
    return f"spec.{number}.json"


def read_state(layout: RunLayout) -> dict | None:
    try:
        return json.loads(storage.read_bytes(layout.state_uri))
    except FileNotFoundError:
        return None


def write_state(layout: RunLayout, state: dict) -> None:
    state["updated"] = time.time()
    storage.write_bytes(layout.state_uri, json.dumps(state, indent=2).encode())


def controller_identity() -> dict:
    """Who drives a run: recorded in run.json so others can tell a live controller."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def controller_alive(state: dict | None, *, stale_after_s: float) -> bool:
    """A controller drives this run: running, a fresh heartbeat, and (on this host) alive."""
    if not state or state.get("state") != "running":
        return False
    if time.time() - state.get("updated", 0) >= stale_after_s:
        return False
    controller = state.get("controller") or {}
    if controller.get("host") == socket.gethostname():
        try:
            os.kill(controller["pid"], 0)  # signal 0: does the process exist?
        except ProcessLookupError:
            return False
        except (PermissionError, KeyError, TypeError):
            pass
    return True


def list_run_ids(storage_uri: str, *, limit: int | None = None) -> list[str]:
    """Run ids under a storage root, newest first (run ids sort by time); at most `limit`.

    Lists the run folders, not their contents, and checks each one's spec.json only until
    `limit` are found: a runs page costs the same with ten runs or ten thousand objects.
    """
    prefix = runs_prefix(storage_uri)
    named = (n for n in reversed(storage.list_folders(prefix)) if RUN_ID_PATTERN.match(n))
    found = []
    for run_id in named:
        if limit is not None and len(found) >= limit:
            break
        if storage.exists(storage.join(prefix, run_id, SPEC_NAME)):
            found.append(run_id)
    return found


def run_id_named(storage_uri: str, name: str) -> str | None:
    """The run id bound to a name (`run_id_for_name`), or None when no run has that name."""
    if RUN_ID_PATTERN.match(name) or not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", name):
        return None
    uri = storage.join(storage_uri, "run-names", f"{name}.json")
    if storage.stat(uri) is None:
        return None
    return json.loads(storage.read_bytes(uri))["run_id"]


def run_id_for_name(storage_uri: str, name: str) -> str:
    """The run id bound to a name (e.g. a Kubernetes Job name), binding a new one if needed.

    The binding is created with the commit primitive, so a restarted controller pod that
    asks again gets the same run and resumes it.
    """
    if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", name):
        raise BadInput(f"run name {name!r} must be a lowercase DNS name")
    if RUN_ID_PATTERN.match(name):
        return name
    uri = storage.join(storage_uri, "run-names", f"{name}.json")
    candidate = new_run_id()
    storage.create_exclusive(uri, json.dumps({"name": name, "run_id": candidate}).encode())
    return json.loads(storage.read_bytes(uri))["run_id"]
