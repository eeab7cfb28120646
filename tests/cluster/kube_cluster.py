"""The one-node cluster of `make cluster-up`, as the cluster tests use it: kubectl and helm
built for it, JSON reads, waits, and a port-forward to a Service."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MLBATCH_CLUSTER_CACHE", "/var/tmp/mlbatch-cluster"))
STATE = CACHE / "state"
# The release `make deploy` installs for the tests, in a namespace of the same name.
NAMESPACE = "mlbatch"
RELEASE = "mlbatch"
BUCKET = "mlbatch"


@dataclass(frozen=True)
class Cluster:
    """A running cluster: its kubeconfig and the folder of its programs."""

    kubeconfig: Path
    bin: Path

    @classmethod
    def running(cls) -> Cluster | None:
        """The cluster cluster/up.sh started, or None when none is up."""
        kubeconfig = STATE / "kubeconfig"
        if not kubeconfig.exists():
            return None
        return cls(kubeconfig, Path((STATE / "bin").read_text().strip()))

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess:
        return self._run(self.bin / "kubectl", args, check, timeout, input)

    def helm(
        self, *args: str, check: bool = True, timeout: float = 900
    ) -> subprocess.CompletedProcess:
        return self._run(self.bin / "helm", args, check, timeout, None)

    def get(self, *args: str) -> dict[str, Any]:
        """`kubectl get ... -o json`, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def items(self, *args: str) -> list[dict[str, Any]]:
        return self.get(*args)["items"]

    def _run(self, program: Path, args, check, timeout, input) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(program), *args], capture_output=True, text=True, env=self.env,
            timeout=timeout, input=input,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(
                f"{program.name} {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    @contextlib.contextmanager
    def port_forward(self, namespace: str, target: str, port: int) -> Iterator[int]:
        """`kubectl port-forward` to a local free port, which it yields."""
        process = subprocess.Popen(
            [str(self.bin / "kubectl"), "--namespace", namespace, "port-forward",
             "--address", "127.0.0.1", target, f":{port}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env,
        )  # fmt: skip
        try:
            line = process.stdout.readline()
            found = re.search(r"127\.0\.0\.1:(\d+) ->", line)
            assert found, f"port-forward to {target} did not start: {line}"
            yield int(found.group(1))
        finally:
            process.terminate()
            process.wait(timeout=10)


def wait_until(
    what: str, condition: Callable[[], Any], *, timeout: float, interval: float = 1.0
) -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def make(*targets: str, timeout: float = 1200, **variables: str) -> subprocess.CompletedProcess:
    """`make TARGET... NAME=value...` from the repository root, as a platform engineer runs it."""
    result = subprocess.run(
        ["make", "--no-print-directory", *targets, *(f"{k}={v}" for k, v in variables.items())],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, (
        f"make {' '.join(targets)} exited {result.returncode}:\n"
        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result
