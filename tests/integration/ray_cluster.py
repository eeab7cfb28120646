"""A real multi-node Ray cluster on loopback for tests: `ray start --head` with its Ray
Client server, plus worker nodes from `ray start --address`, each node on its own
loopback address so trials can be told apart by node.

    with RayCluster.start(nodes=2, cpus_per_node=1) as cluster:
        cluster.client_address  # ray://127.0.0.1:<port>

Each node's processes share the process group of the `ray start` that made them, so the
cluster is stopped by signalling those groups, never with `ray stop` (which would end
every Ray on the machine).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ports import free_port

# `ray start` replaces 127.0.0.1 by the machine's outside address; 127.0.0.2 and up stay
# on loopback (Linux routes all of 127/8 there).
NODE_ADDRESSES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
START_TIMEOUT_S = 120


@dataclass
class RayCluster:
    gcs_address: str
    client_address: str
    temp_dir: Path
    groups: list[int] = field(default_factory=list)  # process groups of the nodes

    @classmethod
    def start(cls, *, nodes: int = 2, cpus_per_node: int = 1) -> RayCluster:
        # Ray's socket paths must stay short: a temp dir under /tmp, not pytest's tmp_path.
        temp_dir = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
        head = NODE_ADDRESSES[0]
        gcs_port, client_port = free_port(), free_port()
        cluster = cls(f"{head}:{gcs_port}", f"ray://127.0.0.1:{client_port}", temp_dir)
        try:
            cluster._ray_start(
                "--head", f"--node-ip-address={head}", f"--port={gcs_port}",
                f"--ray-client-server-port={client_port}", f"--temp-dir={temp_dir}",
                "--include-dashboard=false", f"--num-cpus={cpus_per_node}",
            )  # fmt: skip
            for address in NODE_ADDRESSES[1:nodes]:
                cluster._ray_start(
                    f"--address={cluster.gcs_address}", f"--node-ip-address={address}",
                    f"--num-cpus={cpus_per_node}",
                )  # fmt: skip
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _ray_start(self, *args: str) -> None:
        ray = Path(sys.executable).parent / "ray"
        environment = {
            **os.environ, "RAY_USAGE_STATS_ENABLED": "0",
            # The head starts a server process per client and gives it 30 s by default: a
            # busy 2-core machine can take longer just to import Ray.
            "RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S": "120",
        }  # fmt: skip
        environment.pop("RAY_ADDRESS", None)
        process = subprocess.Popen(
            [str(ray), "start", "--disable-usage-stats", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment,
            start_new_session=True,  # the node's daemons keep this process group
        )  # fmt: skip
        self.groups.append(process.pid)
        output, _ = process.communicate(timeout=START_TIMEOUT_S)
        if process.returncode != 0:
            raise RuntimeError(f"ray start {' '.join(args)} failed:\n{output[-3000:]}")

    def stop(self) -> None:
        for group in reversed(self.groups):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(group, sig)
                except ProcessLookupError:
                    break
                time.sleep(1.0 if sig == signal.SIGTERM else 0)
        subprocess.run(["rm", "-rf", str(self.temp_dir)], check=False)

    def __enter__(self) -> RayCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
