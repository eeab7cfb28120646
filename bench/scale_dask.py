"""A Dask cluster of separate processes (`dask scheduler` + `dask worker`) for the scale
benchmark: the etl stage joins it through DASK_SCHEDULER_ADDRESS, as it would a cluster in
Kubernetes. Peak RSS of the workers is sampled while it lives."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
from dask.utils import parse_bytes

DASK = str(Path(sys.executable).with_name("dask"))


class DaskCluster:
    def __init__(self, folder: Path, *, workers: int, memory_limit: str):
        self.folder, self.workers, self.memory_limit = folder, workers, memory_limit
        self.processes: list[subprocess.Popen] = []
        self.address = ""
        self.peak_worker_rss = 0
        self._worker_cpu: dict[int, float] = {}  # pid -> CPU-seconds last seen
        self._done = threading.Event()

    def __enter__(self) -> DaskCluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        address_file = self.folder / "scheduler.json"
        log = (self.folder / "cluster.log").open("w")
        self.processes.append(subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(address_file)], stdout=log, stderr=subprocess.STDOUT,
        ))  # fmt: skip
        try:
            self.address = self._wait_for_address(address_file)
            self.processes.append(subprocess.Popen(
                [DASK, "worker", "--scheduler-file", str(address_file),
                 "--nworkers", str(self.workers), "--nthreads", "1",
                 "--memory-limit", self.memory_limit, "--no-dashboard",
                 "--local-directory", str(self.folder / "workers")],
                stdout=log, stderr=subprocess.STDOUT,
            ))  # fmt: skip
            self._wait_for_workers()
        except BaseException:
            self.__exit__()
            raise
        threading.Thread(target=self._sample, daemon=True).start()
        return self

    def __exit__(self, *_) -> None:
        self._done.set()
        for process in reversed(self.processes):  # workers first, then the scheduler
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    for child in psutil.Process(process.pid).children(recursive=True):
                        child.kill()
                    process.kill()
                    process.wait()

    def report(self) -> dict:
        limit = parse_bytes(self.memory_limit)
        return {"dask_workers": self.workers, "worker_memory_limit_mib": round(limit / 2**20),
                "peak_worker_rss_mib": round(self.peak_worker_rss / 2**20),
                "workers_cpu_s": round(sum(self._worker_cpu.values()), 2)}  # fmt: skip

    def _wait_for_address(self, path: Path, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes[0].poll() is not None:
                raise RuntimeError(f"dask scheduler exited: see {self.folder / 'cluster.log'}")
            if path.exists():
                try:
                    return json.loads(path.read_text())["address"]
                except (json.JSONDecodeError, KeyError):
                    pass  # still being written
            time.sleep(0.2)
        raise RuntimeError(f"dask scheduler gave no address within {timeout:.0f} s")

    def _wait_for_workers(self, timeout: float = 120) -> None:
        from distributed import Client

        with Client(self.address, timeout=timeout) as client:
            client.wait_for_workers(self.workers, timeout=timeout)

    def _sample(self) -> None:
        """The largest RSS of one worker process (the nannies' children), and the CPU time
        of every worker process that lived (the stage's own profile does not see them)."""
        while not self._done.wait(0.1):
            try:
                for process in psutil.Process(self.processes[1].pid).children(recursive=True):
                    with process.oneshot():
                        self.peak_worker_rss = max(self.peak_worker_rss, process.memory_info().rss)
                        times = process.cpu_times()
                        self._worker_cpu[process.pid] = times.user + times.system
            except psutil.Error:
                pass
