"""The controller loop: plan, launch through an executor, watch, retry, record run.json.

It never does a stage's work. Manifests, not run.json, decide what is done, so a
controller started again on the same run resumes where the last one stopped.
"""

from __future__ import annotations

import enum
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlbatch import cache, logs, runs, storage
from mlbatch.codeversion import code_version
from mlbatch.controller import planner
from mlbatch.controller.executor import Executor, Resources, StageStatus, StageTask, State
from mlbatch.controller.revisions import Revision
from mlbatch.errors import ExitCode
from mlbatch.manifest import Input, Manifest, config_hash, load_manifest
from mlbatch.runs import RunLayout
from mlbatch.spec import PipelineSpec

if TYPE_CHECKING:
    from mlbatch.mlflow_tracking import MlflowTracking

REJECTED = "REJECTED"  # a stage that committed but failed its quality gate
DEFAULT_RESOURCES = {"train": Resources(cpu="2", memory="4Gi")}
LOG_TAIL_LINES = 20
HEARTBEAT_S = 10  # run.json is rewritten at least this often while the controller lives
CANCEL_CHECK_S = 2
SLEEP_SLICE_S = 0.5  # a stop signal ends the pause between polls within this


class RunExitCode(enum.IntEnum):
    """How a controller ends that is not a stage's class (0, 2, 3 are shared with stages).

    Distinct codes, so the controller Job's podFailurePolicy can tell a run that is over
    (FailJob: a new pod would only retry it) from a controller that crashed or was stopped
    (a new pod resumes the run); charts/mlbatch/templates/controller-cronjob.yaml.
    """

    RUN_FAILED = 5  # a stage failed for good (its retries used up): the run is over
    RUN_CANCELLED = 6  # `mlbatch cancel` (or Ctrl-C): the run is over until `mlbatch resume`
    # SIGTERM (128 + 15): the pod is being deleted or the node drained. The stages run on
    # and a new controller (the Job's next pod, or `mlbatch resume`) adopts them.
    INTERRUPTED = 143


class Interrupted(Exception):
    """SIGTERM arrived: stop driving the run, leaving its stages running."""


@dataclass
class RunResult:
    run_id: str
    state: str  # succeeded, failed, rejected, cancelled
    exit_code: int
    failed_stage: str | None = None
    message: str = ""
    log_tail: str = ""
    stages: dict = field(default_factory=dict)


def stage_task(
    spec: PipelineSpec, layout: RunLayout, stage: str, attempt: str, *, env: dict[str, str]
) -> StageTask:
    """The launch request of one attempt: the spec's execution settings applied."""
    execution = spec.execution
    override = execution.stages.get(stage)
    base = DEFAULT_RESOURCES.get(stage, Resources())
    resources = Resources(
        cpu=(override and override.cpu) or base.cpu,
        memory=(override and override.memory) or base.memory,
        gpu=override.gpu if override and override.gpu is not None else base.gpu,
    )
    return StageTask(
        run_id=layout.run_id, run_uri=layout.uri, stage=stage, attempt=attempt,
        code_version=code_version(stage),
        timeout_s=(override and override.timeout_s) or execution.timeout_s,
        resources=resources, env=dict(env),
    )  # fmt: skip


class Controller:
    """Drives one run to its end through one executor."""

    def __init__(
        self,
        *,
        layout: RunLayout,
        spec: PipelineSpec,
        executor: Executor,
        on_change: Callable[[dict], None] = lambda state: None,
        poll_interval_s: float = 0.5,
        env: dict[str, str] | None = None,
        force: set[str] = frozenset(),
        revision: Revision | None = None,
        tracking: MlflowTracking | None = None,
    ):
        self.layout = layout
        self.spec = spec
        self.revision = revision  # the spec revision a resume runs with (spec.json if None)
        self.executor = executor
        self.tracking = tracking  # mirrors the run in MLflow when the run is tracked
        self.on_change = on_change
        self.poll_interval_s = poll_interval_s
        self.env = dict(env or {})
        if revision is not None and revision.name != runs.SPEC_NAME:
            self.env[runs.SPEC_ENV] = revision.name  # every attempt reads what it runs with
        self.stages = planner.stages_for(spec)
        # Stages never taken from the cache.
        self.force = set(self.stages) if "all" in force else set(force)
        existing = runs.read_state(layout)
        self._resuming = existing is not None  # another controller drove this run before
        self.state = existing or self._new_state()
        self._running: dict[str, dict] = {}  # stage -> handle
        self._retry_at: dict[str, float] = {}
        self._tries: dict[str, int] = {}  # attempts launched by this controller, per stage
        self._cancel_checked = 0.0
        self._stop_signal: int | None = None  # set by the SIGTERM handler

    def _new_state(self) -> dict:
        return {
            "run_id": self.layout.run_id,
            "spec_name": self.spec.name,
            "executor": self.executor.name,
            "state": "running",
            "created": time.time(),
            "stages": {s: {"state": State.PENDING.value, "attempts": []} for s in self.stages},
        }

    def run(self) -> RunResult:
        if self._resuming:
            # Recorded; old attempts do not use up this controller's retries (self._tries).
            resumes = self.state.setdefault("resumes", [])
            resumes.append({"at": time.time(), "from_state": self.state.get("state"),
                            **self._resume_record()})  # fmt: skip
        if self.revision is not None and self.revision.name != runs.SPEC_NAME:
            self.state["spec"] = self.revision.name
        self.state.update(
            state="running", executor=self.executor.name, controller=runs.controller_identity()
        )
        for key in ("exit_code", "failed_stage", "message", "finished"):
            self.state.pop(key, None)
        self._adopt_committed()
        self._adopt_running()
        self._track()
        self._save()
        try:
            with self._sigterm_stops_the_loop():
                if self._cancel_requested(now=True):
                    # A controller restarted after `mlbatch cancel` (its Job's next pod)
                    # stops what it adopted and launches nothing.
                    return self._cancelled("cancelled by `mlbatch cancel`")
                return self._loop()
        except KeyboardInterrupt:
            return self._cancelled("cancelled by the user")
        except Interrupted:
            return self._interrupted()

    def _cancelled(self, reason: str) -> RunResult:
        self._cancel_running(reason)
        return self._finish("cancelled", RunExitCode.RUN_CANCELLED, message="cancelled")

    def _interrupted(self) -> RunResult:
        """Record that this controller stopped, and leave every running stage running.

        Not `_finish`: nothing is cancelled or skipped, and run.json's "interrupted" (not
        "running") lets `mlbatch resume` and `mlbatch cancel` act at once.
        """
        message = "controller stopped by SIGTERM; its running stages go on, and the next "
        message += "controller (the Job's next pod, or `mlbatch resume`) adopts them"
        self.state.update(state="interrupted", exit_code=int(RunExitCode.INTERRUPTED),
                          message=message)  # fmt: skip
        self._save()
        return RunResult(
            run_id=self.layout.run_id, state="interrupted",
            exit_code=int(RunExitCode.INTERRUPTED), message=message,
            stages=self.state["stages"],
        )  # fmt: skip

    @contextmanager
    def _sigterm_stops_the_loop(self) -> Iterator[None]:
        """While the run is driven, SIGTERM ends the loop at its next safe point.

        The handler only records the signal: the loop checks it between steps, so a
        launch is never cut between recording an attempt and creating it.
        """
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread
            return

        def stop(signum: int, frame: object) -> None:
            self._stop_signal = signum

        previous = signal.signal(signal.SIGTERM, stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _check_stop(self) -> None:
        if self._stop_signal is not None:
            raise Interrupted()

    def _pause(self) -> None:
        """Sleep between polls, in short slices so a SIGTERM is acted on promptly."""
        end = time.monotonic() + self.poll_interval_s
        while (left := end - time.monotonic()) > 0:
            self._check_stop()
            time.sleep(min(left, SLEEP_SLICE_S))
        self._check_stop()

    def _loop(self) -> RunResult:
        while True:
            self._check_stop()
            done = {s for s in self.stages if self._stage(s)["state"] == State.SUCCEEDED}
            rejected = [s for s in self.stages if self._stage(s)["state"] == REJECTED]
            if rejected and not self._running:
                return self._finish(
                    "rejected", ExitCode.VALIDATION_FAILED, failed_stage=rejected[0],
                    message=self._rejection(rejected[0]),
                )  # fmt: skip
            if len(done) == len(self.stages):
                return self._finish("succeeded", ExitCode.OK)
            now = time.time()
            for stage in planner.ready(done, set(self._running), self.stages):
                if self._retry_at.get(stage, 0) <= now and self._stage(stage)["state"] != REJECTED:
                    self._check_stop()
                    self._launch(stage)
            for stage, handle in list(self._running.items()):
                status = self.executor.poll(handle)
                if status.state.finished:
                    failure = self._settle(stage, status)
                    if failure is not None:
                        return failure
            if self._cancel_requested():
                return self._cancelled("cancelled by `mlbatch cancel`")
            if time.time() - self.state.get("updated", 0) > HEARTBEAT_S:
                self._save()  # the heartbeat: `resume` and `cancel` see a live controller
            self._pause()

    def _cancel_requested(self, *, now: bool = False) -> bool:
        """Whether `mlbatch cancel` left its marker (looked up at most every 2 s)."""
        if not now and time.time() - self._cancel_checked < CANCEL_CHECK_S:
            return False
        self._cancel_checked = time.time()
        return storage.exists(self.layout.cancel_uri)

    def _resume_record(self) -> dict:
        """What this resume runs: the code version of each stage still to commit (code
        may have been edited since), and the spec revision when the spec was."""
        record = {"code_versions": {
            s: code_version(s) for s in self.stages if load_manifest(self.layout, s) is None
        }}  # fmt: skip
        if self.revision is not None and self.revision.edited:
            record.update(spec=self.revision.name, changed=self.revision.changed)
        return record

    def _rejection(self, stage: str) -> str:
        """`evaluate: quality gate failed: roc_auc >= 0.9 (measured 0.7412)`."""
        loaded = load_manifest(self.layout, stage)
        failed = loaded[0].metrics.get("gate_failures") if loaded else None
        return f"{stage}: quality gate failed" + (f": {failed}" if failed else "")

    def _launch(self, stage: str) -> None:
        record = self._stage(stage)
        attempt = runs.new_attempt_id(len(record["attempts"]) + 1)
        key, inputs = self._cache_key(stage)
        if (
            stage not in self.force
            and cache.cacheable(self.spec, stage)
            and self._adopt_cached(stage, attempt, key, inputs)
        ):
            return
        task = stage_task(
            self.spec, self.layout, stage, attempt, env={**self.env, cache.CACHE_KEY_ENV: key}
        )
        # Record the attempt before launching, so a restarted controller can find it.
        record["attempts"].append({"id": attempt, "started": time.time(), "state": "LAUNCHING"})
        self._tries[stage] = self._tries.get(stage, 0) + 1
        self._save()
        handle = self.executor.launch(task)
        record["attempts"][-1].update(handle=handle, state=State.RUNNING.value)
        record["state"] = State.RUNNING.value
        self._running[stage] = handle
        self._save()

    def _cache_key(self, stage: str) -> tuple[str, list[Input]]:
        """The stage's cache key, and the inputs a cached copy records."""
        upstream, inputs = {}, []
        for dependency in planner.DEPENDENCIES[stage]:
            manifest, digest = load_manifest(self.layout, dependency)
            upstream[dependency] = manifest
            inputs.append(
                Input(kind="manifest", uri=self.layout.manifest_uri(dependency), sha256=digest)
            )
        external = (
            cache.external_inputs(self.spec, self.layout.storage_uri) if stage == "etl" else []
        )
        key = cache.cache_key(spec=self.spec, stage=stage, upstream=upstream, external=external)
        return key, inputs + external

    def _adopt_cached(self, stage: str, attempt: str, key: str, inputs: list[Input]) -> bool:
        hit = cache.find_hit(self.layout.storage_uri, stage, key)
        if hit is None or hit[0].run_id == self.layout.run_id:
            return False
        manifest = cache.adopt(layout=self.layout, attempt=attempt, source=hit, inputs=inputs)
        record = self._stage(stage)
        record["attempts"].append({
            "id": manifest.attempt, "started": manifest.started, "ended": manifest.finished,
            "state": State.SUCCEEDED.value, "cached_from": manifest.cached_from,
        })  # fmt: skip
        record["state"] = REJECTED if manifest.status == "rejected" else State.SUCCEEDED.value
        record["cached_from"] = manifest.cached_from
        self._track()
        self._save()
        return True

    def _task(self, stage: str, attempt: str) -> StageTask:
        return stage_task(self.spec, self.layout, stage, attempt, env=self.env)

    def _settle(self, stage: str, status: StageStatus) -> RunResult | None:
        """Record a finished attempt; a RunResult if the run ends here."""
        handle = self._running.pop(stage)
        record = self._stage(stage)
        attempt = record["attempts"][-1]
        attempt.update(
            state=status.state.value, ended=time.time(), exit_code=status.exit_code,
            reason=status.reason,
        )  # fmt: skip
        committed = load_manifest(self.layout, stage)
        if committed is not None and self._made_before_the_edit(stage, committed[0]):
            record["state"] = State.FAILED.value
            self._cancel_running(f"{stage} failed")
            return self._finish(
                "failed", ExitCode.BAD_INPUT, failed_stage=stage,
                message=f"{stage}: attempt {committed[0].attempt}, launched before this "
                "resume's edit, committed the old config; start a new run",
            )  # fmt: skip
        # Superseded, or exited 0: whatever committed is the stage's result.
        if committed is not None and status.exit_code in (ExitCode.OK, ExitCode.SUPERSEDED):
            record["state"] = State.SUCCEEDED.value
        elif committed is not None and committed[0].status == "rejected":
            record["state"] = REJECTED
        elif status.state == State.SUCCEEDED:
            status = StageStatus(
                state=State.FAILED, exit_code=status.exit_code, retryable=True,
                reason="exited 0 without committing a manifest",
            )  # fmt: skip
            attempt.update(state=State.FAILED.value, reason=status.reason)
        if record["state"] in (State.SUCCEEDED.value, REJECTED):
            record["attempts"][-1]["profile"] = committed[0].profile.model_dump()
            self._track()
            self._save()
            return None
        tries = self._tries.get(stage, 1)
        if status.retryable and tries <= self._retries(stage):
            delay = self.spec.execution.backoff_s * 2 ** (tries - 1)
            self._retry_at[stage] = time.time() + delay * random.uniform(0.5, 1.5)
            record["state"] = State.PENDING.value
            record["reason"] = f"retrying after {status.reason}"
            self._save()
            return None
        record["state"] = State.FAILED.value
        record["reason"] = status.reason
        self._cancel_running(f"{stage} failed")
        # 2 and 3 keep their meaning; anything else is the run's own "failed for good".
        exit_code = status.exit_code if status.exit_code in (2, 3) else RunExitCode.RUN_FAILED
        log_tail = self._log_tail(stage, attempt["id"], handle)
        # A stage's last line states its failure ("etl: target column ... is not in ...").
        last = log_tail.splitlines()[-1] if log_tail else ""
        message = last if last.startswith(f"{stage}: ") else f"{stage}: {status.reason}"
        return self._finish(
            "failed", exit_code, failed_stage=stage, message=message, log_tail=log_tail
        )

    def _retries(self, stage: str) -> int:
        override = self.spec.execution.stages.get(stage)
        if override is not None and override.retries is not None:
            return override.retries
        return self.spec.execution.retries

    def _adopt_committed(self) -> None:
        for stage in self.stages:
            loaded = load_manifest(self.layout, stage)
            if loaded is not None:
                status = loaded[0].status
                self._stage(stage)["state"] = REJECTED if status == "rejected" else "SUCCEEDED"

    def _adopt_running(self) -> None:
        """Attempts a previous controller left running: adopt them, or count them lost."""
        for stage in self.stages:
            record = self._stage(stage)
            if record["state"] in ("SUCCEEDED", REJECTED) or not record["attempts"]:
                continue
            last = record["attempts"][-1]
            if last["state"] in ("LAUNCHING", State.RUNNING.value):
                handle = self.executor.find(self.layout.run_id, stage, last["id"])
                if handle is None:
                    lost = "lost with the previous controller"
                    last.update(state=State.FAILED.value, reason=lost)
                elif self.revision is not None and stage in self.revision.changed:
                    # It runs the old config: stopped, so it cannot commit what the edit
                    # replaced (if it commits first anyway, _settle ends the run).
                    self.executor.cancel(handle)
                    last.update(state=State.CANCELLED.value, reason="the resume edited its config")
                else:
                    self._running[stage] = handle
                    continue
            record["state"] = State.PENDING.value

    def _made_before_the_edit(self, stage: str, manifest: Manifest) -> bool:
        """A commit of a stage this resume edited, made with its old config."""
        if self.revision is None or stage not in self.revision.changed:
            return False
        return manifest.config_hash != config_hash(cache.stage_config(self.spec, stage))

    def _cancel_running(self, reason: str) -> None:
        for stage, handle in list(self._running.items()):
            self.executor.cancel(handle)
            record = self._stage(stage)
            record["state"] = State.CANCELLED.value
            record["attempts"][-1].update(state=State.CANCELLED.value, reason=reason)
        self._running.clear()

    def _log_tail(self, stage: str, attempt: str, handle: dict) -> str:
        """The last lines the failed attempt logged (its own upload, else its raw output)."""
        try:
            text = logs.read_log(self.layout.log_prefix(stage, attempt)).decode(errors="replace")
        except Exception:
            text = ""
        if not text.strip() and handle.get("output"):
            try:
                with open(handle["output"], errors="replace") as output:
                    text = output.read()
            except OSError:
                pass
        return logs.tail(text, LOG_TAIL_LINES)

    def _finish(self, state: str, exit_code: int, **details) -> RunResult:
        for stage in self.stages:
            record = self._stage(stage)
            if record["state"] == State.PENDING.value and state != "succeeded":
                record["state"] = "SKIPPED"
        self.state.update(state=state, exit_code=int(exit_code), finished=time.time())
        self.state.update({k: v for k, v in details.items() if k in ("failed_stage", "message")})
        self._track(final=True)
        self._save()
        return RunResult(
            run_id=self.layout.run_id, state=state, exit_code=int(exit_code),
            stages=self.state["stages"], **details,
        )  # fmt: skip

    def _stage(self, stage: str) -> dict:
        return self.state["stages"][stage]

    def _track(self, *, final: bool = False) -> None:
        """Mirror what committed in MLflow, when the run is tracked (in the background; the
        run's end waits for it, bounded). Never fails the run."""
        if self.tracking is not None:
            self.tracking.sync(self.state, final=final)

    def _save(self) -> None:
        if self.tracking is not None:
            self.state["mlflow"] = self.tracking.record()
        runs.write_state(self.layout, self.state)
        self.on_change(self.state)
