"""A private, in-process Ray for the search: loopback only, offline, scratch space only."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ray

# Ray puts Unix sockets at <temp>/session_<date>_<time>_<pid>/sockets/<name>; a socket path
# may hold 107 characters, and the session part takes about 62 of them.
MAX_TEMP_DIR_CHARS = 40
# Ray caches the token in the process, so every cluster this process starts shares one.
PROCESS_TOKEN = secrets.token_hex(32)
# What this module sets, and what ray.init sets in os.environ itself.
RAY_VARIABLES = ("RAY_USAGE_STATS_ENABLED", "RAY_AUTH_TOKEN", "RAY_AUTH_MODE")


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def local_ray(work_dir: Path, *, num_cpus: int) -> Iterator[None]:
    """Start Ray on this machine for the block and shut it down after; reuse one running."""
    if ray.is_initialized():
        yield
        return
    temp_dir = work_dir / "ray"
    if len(str(temp_dir)) > MAX_TEMP_DIR_CHARS:
        temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    temp_dir.mkdir(parents=True, exist_ok=True)
    with _restored_environment(RAY_VARIABLES):
        os.environ.update(_ray_environment())
        try:
            ray.init(
                num_cpus=num_cpus, include_dashboard=False, log_to_driver=True,
                _temp_dir=str(temp_dir), _node_ip_address="127.0.0.1",
            )  # fmt: skip
            yield
        finally:
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
