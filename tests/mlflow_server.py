"""A throwaway MLflow tracking server for tests: loopback, a free port, a SQLite backend
and a local artifact folder (served through the server, as clients upload them).

    with MlflowServer.start(find_mlflow(), folder) as server:
        server.uri

Full mlflow cannot share .venv (its pyarrow pin is older than ours): `make mlflow-server`
installs it in .venv/mlflow-server, which find_mlflow looks in first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ports import free_port

REPO = Path(__file__).resolve().parents[1]
SERVER_ENV = "MLBATCH_MLFLOW_SERVER"  # the `mlflow` program to use instead
START_TIMEOUT_S = 300.0  # its first start creates the SQLite schema: ~1 min on a busy 2-core box


def find_mlflow() -> str | None:
    """The full-mlflow `mlflow` program: $MLBATCH_MLFLOW_SERVER, else .venv/mlflow-server's
    (not PATH: .venv's `mlflow` is mlflow-skinny's, which has no server)."""
    for candidate in (os.environ.get(SERVER_ENV), REPO / ".venv/mlflow-server/bin/mlflow"):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


@dataclass
class MlflowServer:
    uri: str
    process: subprocess.Popen
    log: BinaryIO

    @classmethod
    def start(cls, program: str, folder: Path) -> MlflowServer:
        port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        command = [
            program, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination", str(folder / "artifacts"),
        ]  # fmt: skip
        log = open(folder / "server.log", "wb")  # open for the server's lifetime
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)  # fmt: skip
        server = cls(uri=f"http://127.0.0.1:{port}", process=process, log=log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = (folder / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"mlflow server exited with {process.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"{server.uri}/health", timeout=5) as answer:
                    if answer.status == 200:
                        return server
            except OSError:
                time.sleep(1)
        server.stop()
        raise RuntimeError(f"mlflow server not healthy after {START_TIMEOUT_S:.0f}s")

    def stop(self) -> None:
        """The server and its uvicorn worker: the whole process group."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=5)  # uvicorn's graceful end can take half a minute
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()

    def __enter__(self) -> MlflowServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
