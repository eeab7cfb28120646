"""Credentials never land in logs, manifests, run.json, rendered Jobs or command lines."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from pipeline_checks import REPO, check_run, mlbatch, run_json
from small_tables import QUICK, cancer_csv

from mlbatch import storage

pytestmark = pytest.mark.slow


def _command_lines() -> str:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


def test_credentials_appear_nowhere(tmp_path, s3_env):
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    key_id = os.environ["AWS_ACCESS_KEY_ID"]
    data_uri = storage.join(s3_env, "raw", "cancer.csv")
    storage.upload_file(cancer_csv(tmp_path), data_uri)

    seen: list[str] = []
    done = threading.Event()

    def watch_processes() -> None:
        while not done.is_set():
            seen.append(_command_lines())
            time.sleep(0.5)

    watcher = threading.Thread(target=watch_processes)
    watcher.start()
    try:
        result = mlbatch("run", "--data", data_uri, "--target", "target", "--storage", s3_env,
                         "-o", "json", *QUICK, "--set", "explore.notebook=true")  # fmt: skip
    finally:
        done.set()
        watcher.join()
    assert result.returncode == 0, result.stderr
    summary = run_json(result)
    check_run(s3_env, summary["run_id"])

    produced = [storage.read_bytes(uri) for uri in storage.list_uris(s3_env)]
    rendered = mlbatch("render", str(REPO / "examples/flights.yaml"), "--stage", "train",
                       "--storage", s3_env).stdout  # fmt: skip
    # The local executor's raw stdout/stderr of each attempt (kept for crashes at import).
    outputs = Path(os.environ.get("TMPDIR", "/tmp")) / "mlbatch-local"
    local = [p.read_bytes() for p in outputs.glob(f"{summary['run_id']}-*.out")]
    assert len(local) == 5
    for secret_text in (secret, key_id):
        needle = secret_text.encode()
        assert not any(needle in blob for blob in produced), "a stored object holds a credential"
        assert secret_text not in result.stdout + result.stderr
        assert secret_text not in rendered
        assert not any(secret_text in snapshot for snapshot in seen), "a command line holds it"
        assert not any(needle in blob for blob in local)
    assert len(seen) > 3  # the watcher really saw the run's processes
