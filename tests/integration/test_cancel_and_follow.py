"""`mlbatch cancel` stops a run that `mlbatch resume` then finishes; `logs -f` follows a
running attempt from what the stage uploads."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pipeline_checks import check_run, mlbatch
from small_tables import cancer_csv
from test_faults import _only_run, _running, _start, _wait_for

from mlbatch import runs

pytestmark = pytest.mark.slow


def test_cancel_then_resume(tmp_path, file_storage):
    controller = _start(file_storage, cancer_csv(tmp_path))
    layout = _only_run(file_storage)
    handle = _wait_for(lambda: _running(layout, "train"), what="train to start")
    result = mlbatch("cancel", layout.run_id, "--storage", file_storage)
    assert result.returncode == 0, result.stderr
    controller.communicate(timeout=120)
    assert controller.returncode == 6  # cancelled (runner.RunExitCode.RUN_CANCELLED)
    state = runs.read_state(layout)
    assert state["state"] == "cancelled" and state["stages"]["train"]["state"] == "CANCELLED"
    _wait_for(lambda: subprocess.run(["kill", "-0", str(handle["pid"])],
                                     capture_output=True).returncode != 0,
              timeout_s=30, what="the stage process to end")  # fmt: skip
    resumed = mlbatch("resume", layout.run_id, "--storage", file_storage, "-o", "json")
    assert resumed.returncode == 0, resumed.stderr
    check_run(file_storage, layout.run_id)


def test_logs_follow_a_running_attempt_to_its_end(tmp_path, file_storage):
    controller = _start(file_storage, cancer_csv(tmp_path))
    layout = _only_run(file_storage)
    _wait_for(lambda: _running(layout, "train"), what="train to start")
    follow = subprocess.run(
        [sys.executable, "-m", "mlbatch.controller.cli", "logs", layout.run_id, "train", "-f",
         "--storage", file_storage],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert follow.returncode == 0, follow.stderr
    assert "[mlbatch] train attempt" in follow.stdout
    assert "train committed" in follow.stdout.replace("[mlbatch] ", "")
    controller.communicate(timeout=600)
    assert controller.returncode == 0
