"""Where the search's Ray comes from: a private in-process one (loopback only, offline,
scratch space only) by default, or an existing cluster as a Ray Client when RAY_ADDRESS
is `ray://host:port` (DESIGN §5), with its Ray and Python versions and its code version
checked on connect."""

from __future__ import annotations

import os
import platform
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ray

from mlbatch import unwaited_cpu
from mlbatch.codeversion import ENV_VAR as CODE_VERSION_ENV
from mlbatch.codeversion import code_version
from mlbatch.errors import BadInput

# Ray puts Unix sockets at <temp>/session_<date>_<time>_<pid>/sockets/<name>; a socket path
# may hold 107 characters, and the session part takes about 62 of them.
MAX_TEMP_DIR_CHARS = 40
# Ray caches the token in the process, so every cluster this process starts shares one.
PROCESS_TOKEN = secrets.token_hex(32)
# What this module sets, and what ray.init sets in os.environ itself.
CONNECT_ATTEMPTS = 3
RAY_VARIABLES = ("RAY_USAGE_STATS_ENABLED", "RAY_AUTH_TOKEN", "RAY_AUTH_MODE")
CODE_CHECK_TIMEOUT_S = 120  # a zero-CPU task: only a cluster still starting makes it wait


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def ray_session(work_dir: Path) -> Iterator[str]:
    """Ray for the block: the cluster RAY_ADDRESS names, else a private local one.

    Yields where trials run ("local" or the cluster's address); reuses a Ray already running.
    """
    address = os.environ.get("RAY_ADDRESS", "").strip()
    if ray.is_initialized():
        yield "local"
    elif address:
        with ray_client(address):
            yield address
    else:
        with local_ray(work_dir, num_cpus=available_cpus()):
            yield "local"


@contextmanager
def ray_client(address: str) -> Iterator[None]:
    """Connect to a running cluster as a Ray Client; BadInput when its versions differ."""
    if not address.startswith("ray://"):
        raise BadInput(f"RAY_ADDRESS {address!r}: the train stage connects as ray://host:port")
    # Ray's own check raises a generic error mid-connect; ours names both sides instead.
    with _restored_environment(("RAY_IGNORE_VERSION_MISMATCH", "RAY_ADDRESS")):
        os.environ["RAY_IGNORE_VERSION_MISMATCH"] = "1"
        os.environ.pop("RAY_ADDRESS")  # ray.init would otherwise read it again
        context = _connect(address)
    try:
        check_versions(context.ray_version, context.python_version, address=address)
        check_code_version(cluster_code_version(), code_version("train"), address=address)
        yield
    finally:
        ray.shutdown()


def _connect(address: str, attempts: int = CONNECT_ATTEMPTS):
    """ray.init on a client address, tried again when the head fails to start the server
    it runs for each client (Ray does, now and then, on a busy node)."""
    for attempt in range(1, attempts + 1):
        try:
            return ray.init(address)
        except ConnectionError as error:
            if attempt == attempts:
                message = f"cannot reach the Ray cluster at {address}: {error}"
                raise ConnectionError(message) from None
            print(f"[train] connecting to {address} failed ({attempt}/{attempts}); again in 5s")
            time.sleep(5)


def check_versions(cluster_ray: str, cluster_python: str, *, address: str) -> None:
    """The cluster must run this Ray and this Python (major.minor): pickled trials need both."""
    ours_python = ".".join(platform.python_version_tuple()[:2])
    theirs_python = ".".join(cluster_python.split(".")[:2])
    if cluster_ray != ray.__version__ or theirs_python != ours_python:
        raise BadInput(
            f"the Ray cluster at {address} runs Ray {cluster_ray} on Python {cluster_python}, "
            f"but the train stage has Ray {ray.__version__} on Python "
            f"{platform.python_version()}: build the cluster from the train image"
        )


def cluster_code_version() -> str | None:
    """The code version the cluster's Ray workers run (MLBATCH_CODE_VERSION in their pods:
    the train image bakes it in, the chart sets it); None when they do not say."""

    @ray.remote(num_cpus=0)
    def read() -> str | None:
        return os.environ.get(CODE_VERSION_ENV) or None

    try:
        return ray.get(read.remote(), timeout=CODE_CHECK_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError:
        raise ConnectionError(
            f"the Ray cluster ran no task for {CODE_CHECK_TIMEOUT_S} s (checking its code version)"
        ) from None


def check_code_version(cluster: str | None, ours: str, *, address: str) -> None:
    """The cluster must run this train code: KubeRay keeps Ray pods when their template
    changes, so after a redeploy they may still run the old image."""
    if cluster is None:
        print(f"[train] the Ray cluster at {address} does not say its code version "
              f"({CODE_VERSION_ENV}); trials run whatever code it has")  # fmt: skip
        return
    if cluster != ours:
        raise BadInput(
            f"the Ray cluster at {address} runs train code {cluster}, but this stage is "
            f"{ours}: its Ray pods are from an older (or newer) image; redeploy the chart "
            f"with ray.imageTag={ours} (a new image is a new RayCluster)"
        )


@contextmanager
def local_ray(work_dir: Path, *, num_cpus: int, num_gpus: int | None = None) -> Iterator[None]:
    """Start Ray on this machine for the block and shut it down after (num_gpus: what Ray
    is told, detected when None; tests pass a fake count)."""
    temp_dir = work_dir / "ray"
    if len(str(temp_dir)) > MAX_TEMP_DIR_CHARS:
        temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    temp_dir.mkdir(parents=True, exist_ok=True)
    with _restored_environment(RAY_VARIABLES):
        os.environ.update(_ray_environment())
        try:
            ray.init(
                num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, log_to_driver=True,
                _temp_dir=str(temp_dir), _node_ip_address="127.0.0.1",
            )  # fmt: skip
            yield
        finally:
            unwaited_cpu.record()  # the workers die unwaited-for: count them while they live
            ray.shutdown()
            if not temp_dir.is_relative_to(work_dir):
                shutil.rmtree(temp_dir, ignore_errors=True)


def _ray_environment() -> dict[str, str]:
    environment = {"RAY_USAGE_STATS_ENABLED": "0"}  # never phone home
    if not {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"} & set(os.environ):
        # Ray secures a new cluster with a token it would otherwise save to ~/.ray, outside
        # the scratch space (a read-only home in a pod); this cluster lives only as long as
        # the process, so its token can too.
        # (Ray turns RAY_AUTH_MODE to token itself, once it has read its config.)
        environment["RAY_AUTH_TOKEN"] = PROCESS_TOKEN
    return environment


@contextmanager
def _restored_environment(names: tuple[str, ...]) -> Iterator[None]:
    """Give these environment variables back their old values after the block."""
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
