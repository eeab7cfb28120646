"""A stage's log capture: fds 1 and 2 (Python, native writes, child processes) teed into
numbered chunks in storage, robust to storage failures.

Each scenario runs in its own Python process, as a stage does: pytest's own capture
replaces sys.stdout, which would hide Python's prints from an fd-level capture.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from mlbatch import logs, storage

HEADER = """\
import os, subprocess, sys, time
from mlbatch import logs, storage
from mlbatch.errors import StorageError

prefix = sys.argv[1]

def wait_pending(capture, text):
    # until the reader thread has taken `text` off the pipe
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with capture._lock:
            if text.encode() in capture._pending:
                return
        time.sleep(0.01)
    raise SystemExit(f"{text!r} never reached the capture")
"""


def run_script(body: str, prefix: str) -> subprocess.CompletedProcess:
    script = HEADER + textwrap.dedent(body)
    result = subprocess.run([sys.executable, "-c", script, prefix], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    return result


def chunk_names(prefix: str) -> list[str]:
    return [uri.rsplit("/", 1)[1] for uri in storage.list_uris(prefix)]


def test_python_fd2_and_child_output_land_in_order(file_storage):
    prefix = storage.join(file_storage, "runs", "r", "etl", "attempts", "1-abcd", "logs")
    result = run_script(
        """
        print("before the capture")
        with logs.LogCapture(prefix, interval_s=0.05):
            print("python print")
            time.sleep(0.3)  # let a chunk go up: the log is uploaded as the stage runs
            os.write(2, b"raw fd 2\\n")
            print("python stderr", file=sys.stderr)
            time.sleep(0.3)
            subprocess.run(["echo", "child"], check=True)
            print("last line")
        print("after the capture")
        """,
        prefix,
    )
    expected = b"python print\nraw fd 2\npython stderr\nchild\nlast line\n"
    assert logs.read_log(prefix) == expected
    names = chunk_names(prefix)
    assert len(names) >= 2, names  # uploaded while running, not only at the end
    assert names == [logs.CHUNK_NAME.format(i) for i in range(len(names))]
    # the output still reaches the process's own stdout (terminal, kubectl logs)
    assert result.stdout == b"before the capture\n" + expected + b"after the capture\n"


def test_storage_failure_does_not_raise_and_data_arrives_on_next_flush(file_storage):
    prefix = storage.join(file_storage, "logs")
    result = run_script(
        """
        real_write = storage.write_bytes
        calls = []

        def flaky_write(uri, data):
            calls.append(uri)
            if len(calls) == 1:
                raise StorageError("storage is down")
            real_write(uri, data)

        storage.write_bytes = flaky_write
        with logs.LogCapture(prefix, interval_s=3600) as capture:
            print("first")
            wait_pending(capture, "first")
            capture.flush()  # fails: must not raise, must keep the data
            assert len(calls) == 1 and storage.list_uris(prefix) == []
            print("second")
            wait_pending(capture, "second")
            capture.flush()  # succeeds: both lines in one chunk
            print("third")
        print("calls", len(calls))
        """,
        prefix,
    )
    assert logs.read_log(prefix) == b"first\nsecond\nthird\n"
    assert chunk_names(prefix) == ["00000.log", "00001.log"]
    assert storage.read_bytes(storage.join(prefix, "00000.log")) == b"first\nsecond\n"
    assert b"[mlbatch] log upload failed: storage is down" in result.stderr
    assert result.stdout.endswith(b"calls 3\n")


def test_every_upload_failing_never_raises(file_storage):
    prefix = storage.join(file_storage, "logs")
    result = run_script(
        """
        def broken(uri, data):
            raise OSError("disk full")

        storage.write_bytes = broken
        with logs.LogCapture(prefix, interval_s=0.05):
            print("lost but harmless")
            time.sleep(0.3)
        print("stage carried on")
        """,
        prefix,
    )
    assert result.stdout.endswith(b"stage carried on\n")
    assert b"log upload failed: disk full" in result.stderr
    assert logs.read_log(prefix) == b""


def test_read_log_of_missing_attempt_is_empty(file_storage):
    assert logs.read_log(storage.join(file_storage, "nothing", "logs")) == b""


def test_tail():
    assert logs.tail("a\nb\nc\n", 2) == "b\nc"
    assert logs.tail("a\nb\nc", 5) == "a\nb\nc"
    assert logs.tail("", 3) == ""
