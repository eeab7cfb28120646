"""The local executor: each attempt is a subprocess running the exact container command."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlbatch.controller.executor import Handle, StageStatus, StageTask, State, status_from_exit_code

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the controller dies, however it dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalExecutor:
    """Runs attempts as child processes of the controller (they die with it)."""

    name = "local"

    def __init__(self, *, output_dir: Path, env: dict[str, str] | None = None):
        self.output_dir = output_dir  # the children's raw stdout/stderr, for crashes at import
        self.env = env or {}
        self._processes: dict[int, subprocess.Popen] = {}
        self._handles: dict[tuple[str, str, str], Handle] = {}

    def launch(self, task: StageTask) -> Handle:
        command = list(task.command)
        command[0] = sys.executable  # the container's `python` is this environment's python
        self.output_dir.mkdir(parents=True, exist_ok=True)
        output = self.output_dir / f"{task.run_id}-{task.stage}-{task.attempt}.out"
        env = {**os.environ, **self.env, **task.env, "PYTHONUNBUFFERED": "1"}
        with open(output, "wb") as sink:
            process = subprocess.Popen(
                command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, preexec_fn=_die_with_parent, start_new_session=True,
            )  # fmt: skip
        self._processes[process.pid] = process
        handle = {
            "executor": self.name, "pid": process.pid, "output": str(output),
            "started": time.time(), "timeout_s": task.timeout_s,
        }  # fmt: skip
        self._handles[(task.run_id, task.stage, task.attempt)] = handle
        return handle

    def find(self, run_id: str, stage: str, attempt: str) -> Handle | None:
        # Children die with their controller, so a new controller never has one to adopt.
        return self._handles.get((run_id, stage, attempt))

    def poll(self, handle: Handle) -> StageStatus:
        process = self._processes.get(handle["pid"])
        if process is None:
            return StageStatus(
                state=State.FAILED, retryable=True, reason="process lost (controller restarted)"
            )
        code = process.poll()
        if code is None:
            if time.time() - handle["started"] > handle["timeout_s"]:
                self.cancel(handle)
                return StageStatus(
                    state=State.FAILED, retryable=True,
                    reason=f"timed out after {handle['timeout_s']} s",
                )  # fmt: skip
            return StageStatus(state=State.RUNNING)
        return status_from_exit_code(code)

    def cancel(self, handle: Handle) -> None:
        process = self._processes.get(handle["pid"])
        if process is None or process.poll() is not None:
            return
        # The stage and anything it started (Ray's workers) share its process group.
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
