"""A stage's own log: everything written to fds 1 and 2, uploaded to storage as it runs.

Capturing at the file-descriptor level catches native libraries and child processes too
(XGBoost, Ray's workers). The output still reaches the original stdout, so `kubectl logs`
and a terminal see it; storage gets it in numbered chunks, which outlive pods and
controllers and need no append support from the object store.
"""

from __future__ import annotations

import os
import select
import sys
import threading

from mlbatch import storage

CHUNK_NAME = "{:05d}.log"
LOG_DIR = "logs"  # inside each attempt folder; never an output


class LogCapture:
    """Tee fds 1 and 2 into numbered chunks under `prefix_uri` every `interval_s`."""

    def __init__(self, prefix_uri: str, *, interval_s: float = 5.0):
        self.prefix_uri = prefix_uri
        self.interval_s = interval_s
        self._pending = bytearray()
        self._lock = threading.Lock()  # guards _pending
        self._flush_lock = threading.Lock()  # one upload at a time keeps chunks in order
        self._chunks = 0
        self._stop = threading.Event()

    def __enter__(self) -> LogCapture:
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved_out = os.dup(1)
        self._saved_err = os.dup(2)
        self._read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 1)
        os.dup2(write_fd, 2)
        os.close(write_fd)
        sys.stdout.reconfigure(line_buffering=True)
        sys.stderr.reconfigure(line_buffering=True)
        self._reader = threading.Thread(target=self._read, name="log-reader", daemon=True)
        self._uploader = threading.Thread(target=self._upload_loop, name="log-upload", daemon=True)
        self._reader.start()
        self._uploader.start()
        return self

    def __exit__(self, *exc) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        # Point 1 and 2 back at the originals. Children that inherited the pipe may keep it
        # open, so the reader drains what is there instead of waiting for end-of-file.
        os.dup2(self._saved_out, 1)
        os.dup2(self._saved_err, 2)
        self._stop.set()
        self._reader.join(timeout=5)
        self._uploader.join(timeout=30)
        self.flush()
        for fd in (self._saved_out, self._saved_err):
            os.close(fd)

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self._read_fd], [], [], 0.2)
            if not ready:
                if self._stop.is_set():
                    break
                continue
            data = os.read(self._read_fd, 65536)
            if not data:
                break
            os.write(self._saved_out, data)
            with self._lock:
                self._pending += data
        os.close(self._read_fd)

    def _upload_loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def flush(self) -> None:
        """Upload what arrived since the last chunk; on failure keep it for the next try."""
        with self._flush_lock:
            with self._lock:
                data = bytes(self._pending)
                self._pending.clear()
            if not data:
                return
            uri = storage.join(self.prefix_uri, CHUNK_NAME.format(self._chunks))
            try:
                storage.write_bytes(uri, data)
                self._chunks += 1
            except Exception as error:  # a storage hiccup must never fail the stage
                with self._lock:
                    self._pending[:0] = data
                os.write(self._saved_err, f"[mlbatch] log upload failed: {error}\n".encode())


def read_log(prefix_uri: str) -> bytes:
    """The whole log of one attempt, chunks in order."""
    chunks = [u for u in storage.list_uris(prefix_uri) if u.endswith(".log")]
    return b"".join(storage.read_bytes(u) for u in sorted(chunks))


def tail(text: str, lines: int) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])
