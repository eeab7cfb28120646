"""The controller loop against a scripted executor: order, retries, failures, resume."""

from __future__ import annotations

import os
import signal
import time

import pytest

from mlbatch import cache, runs, storage
from mlbatch.controller import planner, revisions
from mlbatch.controller.executor import StageStatus, StageTask, State, status_from_exit_code
from mlbatch.controller.runner import Controller, RunExitCode
from mlbatch.manifest import Manifest, Profile, commit, config_hash
from mlbatch.runs import RunLayout
from mlbatch.spec import STAGES, PipelineSpec, validate_spec

SPEC = {
    "name": "scripted",
    "target": "y",
    "etl": {"sources": {"data": {"uri": "data.csv"}}},
    "execution": {"retries": 2, "backoff_s": 0.01},
}


class ScriptedExecutor:
    """Finishes each attempt at once with the next scripted exit code of its stage.

    Exit 0 commits a manifest as a real stage would (the config hash of the spec revision
    it was launched with); 4 commits one as if another attempt had won the race; 3 with
    `rejected` commits a rejected one; other codes commit nothing. Attempts named in
    `left_running` are found running, as a previous controller's would be.
    """

    name = "scripted"

    def __init__(self, layout: RunLayout, script: dict[str, list[int]], rejected=(),
                 left_running=()):  # fmt: skip
        self.layout = layout
        self.script = {stage: list(codes) for stage, codes in script.items()}
        self.rejected = set(rejected)
        self.left_running = set(left_running)
        self.launched: list[tuple[str, str]] = []
        self.cancelled: list[str] = []

    def launch(self, task: StageTask) -> dict:
        self.launched.append((task.stage, task.attempt))
        codes = self.script.get(task.stage) or [0]
        code = codes.pop(0) if len(codes) > 1 else codes[0]
        if code in (0, 4) or (code == 3 and task.stage in self.rejected):
            spec_name = task.env.get(runs.SPEC_ENV, runs.SPEC_NAME)
            commit_stage(self.layout, task.stage, task.attempt, spec_name, code)
        return {"executor": self.name, "stage": task.stage, "code": code}

    def find(self, run_id, stage, attempt):
        if attempt in self.left_running:
            return {"executor": self.name, "stage": stage, "code": None}
        return None

    def poll(self, handle: dict) -> StageStatus:
        if handle["code"] is None:
            return StageStatus(state=State.RUNNING)
        return status_from_exit_code(handle["code"])

    def cancel(self, handle: dict) -> None:
        self.cancelled.append(handle["stage"])


def commit_stage(layout: RunLayout, stage: str, attempt: str, spec_name: str, code: int = 0):
    spec = PipelineSpec.model_validate(runs.read_spec(layout, spec_name))
    manifest = Manifest(
        run_id=layout.run_id, stage=stage, attempt=attempt,
        status="rejected" if code == 3 else "succeeded", exit_code=0 if code == 4 else code,
        code_version="test", config_hash=config_hash(cache.stage_config(spec, stage)),
        metrics={"gate_failures": "roc_auc >= 0.9 (measured 0.7412)"} if code == 3 else {},
        profile=Profile(wall_s=1, cpu_s=1, peak_rss_mb=1),
        started=time.time(), finished=time.time(),
    )  # fmt: skip
    commit(layout, manifest)


@pytest.fixture
def layout(tmp_path) -> RunLayout:
    layout = RunLayout(f"file://{tmp_path}", runs.new_run_id())
    runs.write_spec(layout, validate_spec(SPEC).model_dump(mode="json"))
    return layout


def _controller(layout, executor, **spec_changes) -> Controller:
    spec = validate_spec({**SPEC, **spec_changes})
    return Controller(layout=layout, spec=spec, executor=executor, poll_interval_s=0.001)


def test_all_stages_run_in_dependency_order(layout):
    executor = ScriptedExecutor(layout, {})
    result = _controller(layout, executor).run()
    assert result.state == "succeeded" and result.exit_code == 0
    order = [stage for stage, _ in executor.launched]
    assert sorted(order) == sorted(STAGES)
    for stage in STAGES:
        assert all(order.index(d) < order.index(stage) for d in planner.DEPENDENCIES[stage])
    state = runs.read_state(layout)
    assert state["state"] == "succeeded"
    assert all(state["stages"][s]["state"] == "SUCCEEDED" for s in STAGES)


def test_retryable_failure_is_retried_then_succeeds(layout):
    executor = ScriptedExecutor(layout, {"features": [1, 137, 0]})
    result = _controller(layout, executor).run()
    assert result.state == "succeeded"
    attempts = runs.read_state(layout)["stages"]["features"]["attempts"]
    assert [a["exit_code"] for a in attempts] == [1, 137, 0]
    assert len({a["id"] for a in attempts}) == 3  # every attempt has its own folder


def test_retries_exhausted_fails_the_run_with_a_retryable_code(layout):
    executor = ScriptedExecutor(layout, {"train": [1]})
    result = _controller(layout, executor).run()
    assert result.state == "failed" and result.failed_stage == "train"
    # Not 1: the controller Job's podFailurePolicy must end the Job, not restart the
    # controller (which would resume and retry the stage all over again).
    assert result.exit_code == RunExitCode.RUN_FAILED == 5
    assert len(runs.read_state(layout)["stages"]["train"]["attempts"]) == 3  # 1 + 2 retries
    assert "evaluate" not in [s for s, _ in executor.launched]


@pytest.mark.parametrize("code", [2, 3])
def test_bad_input_and_validation_are_never_retried(layout, code):
    executor = ScriptedExecutor(layout, {"etl": [code]})
    result = _controller(layout, executor).run()
    assert result.exit_code == code and result.failed_stage == "etl"
    assert executor.launched == [("etl", executor.launched[0][1])]
    state = runs.read_state(layout)
    assert state["stages"]["explore"]["state"] == "SKIPPED"


def test_superseded_attempt_counts_as_done_when_the_stage_committed(layout):
    executor = ScriptedExecutor(layout, {"features": [4]})
    result = _controller(layout, executor).run()
    assert result.state == "succeeded"
    features = runs.read_state(layout)["stages"]["features"]
    assert features["state"] == "SUCCEEDED"
    assert [a["exit_code"] for a in features["attempts"]] == [4]


def test_a_finished_run_launches_nothing_again(layout):
    assert _controller(layout, ScriptedExecutor(layout, {})).run().state == "succeeded"
    again = ScriptedExecutor(layout, {})
    assert _controller(layout, again).run().state == "succeeded"
    assert again.launched == []  # manifests decide what is done


def test_failed_gate_ends_the_run_rejected(layout):
    executor = ScriptedExecutor(layout, {"evaluate": [3]}, rejected={"evaluate"})
    result = _controller(layout, executor).run()
    assert result.state == "rejected" and result.exit_code == 3
    assert result.message == "evaluate: quality gate failed: roc_auc >= 0.9 (measured 0.7412)"
    assert runs.read_state(layout)["stages"]["evaluate"]["state"] == "REJECTED"


def test_resume_runs_only_what_has_not_committed(layout):
    first = ScriptedExecutor(layout, {"train": [2]})
    assert _controller(layout, first).run().state == "failed"
    second = ScriptedExecutor(layout, {})
    result = _controller(layout, second).run()
    assert result.state == "succeeded"
    assert sorted(s for s, _ in second.launched) == ["evaluate", "train"]


def _left_running(layout, stage: str) -> str:
    """A run whose controller died while `stage` ran: its last attempt is still RUNNING."""
    assert _controller(layout, ScriptedExecutor(layout, {stage: [2]})).run().state == "failed"
    state = runs.read_state(layout)
    attempt = state["stages"][stage]["attempts"][-1]
    attempt["state"] = "RUNNING"
    runs.write_state(layout, {**state, "state": "running"})
    return attempt["id"]


def _resume_with_edit(layout, executor, override: str):
    revision = revisions.revise(layout, validate_spec(SPEC, [override]))
    return Controller(layout=layout, spec=revision.spec, executor=executor,
                      poll_interval_s=0.001, revision=revision).run()  # fmt: skip


def test_a_resume_adopts_a_running_attempt_of_a_stage_it_did_not_edit(layout):
    _left_running(layout, "train")
    executor = ScriptedExecutor(layout, {})
    executor.find = lambda run_id, stage, attempt: (  # it then finishes, committing
        commit_stage(layout, stage, attempt, runs.SPEC_NAME)
        or {"executor": "scripted", "stage": stage, "code": 0}
    )
    assert _resume_with_edit(layout, executor, "evaluate.seed=3").state == "succeeded"
    assert executor.cancelled == [] and [s for s, _ in executor.launched] == ["evaluate"]


@pytest.mark.timeout(20)  # adopted, the found attempt would run forever
def test_a_resume_that_edits_a_stage_stops_its_running_attempt_and_starts_anew(layout):
    running = _left_running(layout, "train")
    executor = ScriptedExecutor(layout, {}, left_running={running})
    result = _resume_with_edit(layout, executor, "train.seed=7")
    assert result.state == "succeeded"
    assert executor.cancelled == ["train"]
    attempts = runs.read_state(layout)["stages"]["train"]["attempts"]
    assert (attempts[-2]["id"], attempts[-2]["state"]) == (running, "CANCELLED")
    assert attempts[-2]["reason"] == "the resume edited its config"
    assert attempts[-1]["state"] == "SUCCEEDED"
    assert [s for s, _ in executor.launched] == ["train", "evaluate"]


@pytest.mark.timeout(20)  # adopted, the found attempt would run forever
def test_an_old_attempt_that_commits_before_it_stops_fails_the_resume(layout):
    running = _left_running(layout, "train")
    executor = ScriptedExecutor(layout, {"train": [4]}, left_running={running})
    executor.cancel = lambda handle: commit_stage(layout, "train", running, runs.SPEC_NAME)
    result = _resume_with_edit(layout, executor, "train.seed=7")
    assert (result.state, result.exit_code, result.failed_stage) == ("failed", 2, "train")
    assert result.message == (
        f"train: attempt {running}, launched before this resume's edit, committed the old "
        "config; start a new run"
    )
    assert "evaluate" not in [s for s, _ in executor.launched]


def test_downstream_of_a_stage():
    assert planner.downstream("etl") == {"explore", "features", "train", "evaluate", "predict"}
    assert planner.downstream("train") == {"evaluate"}
    assert planner.ready(done=set(), started=set()) == ["etl"]
    assert planner.ready(done={"etl"}, started=set()) == ["explore"]
    assert planner.ready(done={"etl", "explore"}, started=set()) == ["features"]


def test_a_spec_with_predict_is_a_scoring_pipeline(layout):
    spec = {**SPEC, "predict": {"model": "flights@production"}}
    layout = RunLayout(layout.storage_uri, runs.new_run_id())  # a scoring run of its own
    runs.write_spec(layout, validate_spec(spec).model_dump(mode="json"))
    executor = ScriptedExecutor(layout, {})
    result = _controller(layout, executor, predict={"model": "flights@production"}).run()
    assert result.state == "succeeded"
    assert [stage for stage, _ in executor.launched] == ["etl", "predict"]
    assert set(runs.read_state(layout)["stages"]) == {"etl", "predict"}


def _request_cancel(layout) -> None:
    storage.create_exclusive(layout.cancel_uri, b"{}")


@pytest.mark.timeout(20)
def test_a_cancelled_run_exits_with_its_own_code(layout):
    executor = ScriptedExecutor(layout, {})
    executor.poll = lambda handle: (  # train runs until `mlbatch cancel`
        (_request_cancel(layout) or StageStatus(state=State.RUNNING))
        if handle["stage"] == "train" else status_from_exit_code(handle["code"])
    )  # fmt: skip
    result = _controller(layout, executor).run()
    assert (result.state, result.exit_code) == ("cancelled", RunExitCode.RUN_CANCELLED)
    assert result.exit_code == 6 and executor.cancelled == ["train"]


@pytest.mark.timeout(20)  # adopted and not cancelled, the found attempt would run forever
def test_a_controller_restarted_after_a_cancel_stops_what_it_adopts_and_launches_nothing(layout):
    running = _left_running(layout, "train")
    _request_cancel(layout)
    executor = ScriptedExecutor(layout, {}, left_running={running})
    result = _controller(layout, executor).run()
    assert (result.state, result.exit_code) == ("cancelled", 6)
    assert executor.launched == [] and executor.cancelled == ["train"]


@pytest.mark.timeout(20)
def test_sigterm_records_the_run_and_exits_leaving_its_stages_to_the_next_controller(layout):
    executor = ScriptedExecutor(layout, {})
    polls = []

    def poll(handle):
        if handle["stage"] != "train":
            return status_from_exit_code(handle["code"])
        polls.append(1)
        if len(polls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # the pod is being deleted
        return StageStatus(state=State.RUNNING)

    executor.poll = poll
    before = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    result = _controller(layout, executor).run()
    assert time.monotonic() - started < 5
    assert (result.state, result.exit_code) == ("interrupted", RunExitCode.INTERRUPTED)
    assert result.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) == before, "the handler is put back"
    assert executor.cancelled == []
    state = runs.read_state(layout)
    assert state["state"] == "interrupted" and state["exit_code"] == 143
    train = state["stages"]["train"]
    assert train["state"] == "RUNNING" and train["attempts"][-1]["state"] == "RUNNING"
    assert state["stages"]["evaluate"]["state"] == "PENDING", "nothing is skipped"

    # The Job's next pod adopts the running train attempt instead of launching another.
    nxt = ScriptedExecutor(layout, {})
    nxt.find = lambda run_id, stage, attempt: (
        commit_stage(layout, stage, attempt, runs.SPEC_NAME)
        or {"executor": "scripted", "stage": stage, "code": 0}
    )
    assert _controller(layout, nxt).run().state == "succeeded"
    assert [s for s, _ in nxt.launched] == ["evaluate"]


class RecordedTracking:
    """Stands for mlflow_tracking.MlflowTracking: the syncs asked for, and a record."""

    def __init__(self):
        self.syncs: list[tuple[list[str], bool, str]] = []  # committed stages, final, state

    def sync(self, state: dict, *, final: bool = False) -> None:
        committed = [
            s for s, r in state["stages"].items() if r["state"] in ("SUCCEEDED", "REJECTED")
        ]
        self.syncs.append((committed, final, state["state"]))

    def record(self) -> dict:
        return {"uri": "http://mlflow:5000", "syncs": len(self.syncs)}


def test_the_run_is_mirrored_at_its_start_after_each_commit_and_at_its_end(layout):
    tracking = RecordedTracking()
    spec = validate_spec(SPEC)
    executor = ScriptedExecutor(layout, {"train": [1, 0]})  # a retry commits nothing new
    Controller(layout=layout, spec=spec, executor=executor, poll_interval_s=0.001,
               tracking=tracking).run()  # fmt: skip
    assert tracking.syncs[0] == ([], False, "running")
    committed = [len(stages) for stages, final, _ in tracking.syncs[1:-1]]
    assert committed == list(range(1, len(STAGES) + 1))  # one sync per commit
    assert tracking.syncs[-1] == (list(STAGES), True, "succeeded")
    # run.json keeps the tracking's record, as of the end
    assert runs.read_state(layout)["mlflow"]["syncs"] == len(STAGES) + 2
