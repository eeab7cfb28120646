"""The container executor: each attempt runs in its stage's image through the podman or
docker command line, with the same command and settings as the local executor.

Containers run like the Kubernetes pods: non-root, read-only root filesystem, writable
/tmp only, no capabilities. docs/images.md describes how storage, credentials, networking
and GPUs reach a container.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from mlbatch import runs, storage
from mlbatch.controller.executor import Handle, StageStatus, StageTask, State, status_from_exit_code
from mlbatch.errors import BadInput, MlbatchError
from mlbatch.runs import RunLayout

STAGE_USER = "65532:65532"  # the images' user (USER in images/*/Dockerfile)
SHARED_MEMORY_STAGES = frozenset({"train"})  # Ray's object store lives in /dev/shm
LABEL = "mlbatch.io"
STOP_TIMEOUT_S = 10  # SIGTERM, then SIGKILL, as a pod's grace period
ENGINE_TIMEOUT_S = 120  # one engine command; `run` may first pull a registry image
# The root filesystem is read-only: everything that writes a dotfile or cache goes to /tmp.
WRITABLE_ENV = {
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "XDG_CACHE_HOME": "/tmp/.cache",
    "MPLCONFIGDIR": "/tmp/matplotlib",
    "IPYTHONDIR": "/tmp/ipython",
    "JUPYTER_CONFIG_DIR": "/tmp/jupyter/config",
    "JUPYTER_DATA_DIR": "/tmp/jupyter/data",
    "JUPYTER_RUNTIME_DIR": "/tmp/jupyter/runtime",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
}
# What a stage may read from the controller's environment: storage settings and
# credentials (the standard AWS variables), mlbatch settings, a Ray cluster to join.
FORWARDED_PREFIXES = ("AWS_", "MLBATCH_")
FORWARDED_NAMES = frozenset({"RAY_ADDRESS"})
# Paths on the host (meaningless in a container) and the controller's own settings.
NOT_FORWARDED = frozenset({
    "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CA_BUNDLE",
    "MLBATCH_STORAGE", "MLBATCH_CONSTRAINTS", "MLBATCH_IMAGE_REPOSITORY",
    "MLBATCH_CONTAINER_ENGINE", "MLBATCH_CONTAINER_NETWORK",
})  # fmt: skip
MEMORY_UNITS = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class ContainerSettings:
    """How stage containers are run; `from_env` reads the MLBATCH_* overrides."""

    # The podman or docker CLI (a name on PATH or a path); MLBATCH_CONTAINER_ENGINE.
    engine: str = "podman"
    # Images are <repository>-<stage>:<code version>; MLBATCH_IMAGE_REPOSITORY.
    image_repository: str = "localhost/mlbatch"
    # A --network value; "" chooses: the host's network when the storage endpoint or
    # RAY_ADDRESS is on loopback (nothing else reaches it), else the engine's default.
    # MLBATCH_CONTAINER_NETWORK.
    network: str = ""
    # Where each container's raw output is kept after it is removed (crashes at import).
    output_dir: Path = field(default_factory=lambda: Path("/tmp/mlbatch-container"))

    @classmethod
    def from_env(
        cls, *, environ: Mapping[str, str] | None = None, **overrides
    ) -> ContainerSettings:
        env = os.environ if environ is None else environ
        engine = env.get("MLBATCH_CONTAINER_ENGINE") or default_engine()
        values = {
            "engine": engine,
            "image_repository": env.get("MLBATCH_IMAGE_REPOSITORY") or cls.image_repository,
            "network": env.get("MLBATCH_CONTAINER_NETWORK", ""),
        }
        return cls(**(values | overrides))

    @property
    def is_podman(self) -> bool:
        return "podman" in Path(self.engine).name


def default_engine() -> str:
    """podman when it is installed, else docker (as `make images` chooses)."""
    return "podman" if shutil.which("podman") else "docker"


def container_name(*, run_id: str, stage: str, attempt: str) -> str:
    """Deterministic, so a restarted controller finds the container of an attempt."""
    return f"mlbatch-{run_id}-{stage}-{attempt}"


def image_name(task: StageTask, settings: ContainerSettings) -> str:
    return f"{settings.image_repository}-{task.stage}:{task.code_version}"


@dataclass(frozen=True)
class RunCommand:
    """An engine command line and the environment to start it with (secrets go there)."""

    argv: list[str]
    env: dict[str, str]


def build_run_command(
    task: StageTask, settings: ContainerSettings, *, environ: Mapping[str, str],
    launched_at: float, source_folders: tuple[Path, ...] = (),
) -> RunCommand:  # fmt: skip
    """The `run` command of one attempt; pure but for a stat of a file:// storage folder.
    `source_folders` (see `local_source_folders`) are mounted read-only at their own paths.

    Every value from the controller's environment or the task goes into the engine's own
    environment and is named in argv as `--env NAME`, so no credential is ever on a
    command line (`ps`, shell history, logs); argv carries only constants and names.
    """
    stage_env = _stage_environment(task, environ)
    argv = [
        settings.engine, "run", "--detach", "--init",
        "--name", container_name(run_id=task.run_id, stage=task.stage, attempt=task.attempt),
        *_labels(task, launched_at=launched_at),
        "--read-only", "--tmpfs", "/tmp:rw,exec,nosuid,nodev,mode=1777",
        "--cap-drop=ALL", "--security-opt=no-new-privileges",
        *_user_and_storage(task, settings),
        *[f"--volume={folder}:{folder}:ro" for folder in source_folders],
        *_limits(task, settings),
    ]  # fmt: skip
    network = settings.network or ("host" if _needs_host_network(stage_env) else "")
    if network:
        argv.append(f"--network={network}")
    for name, value in _constant_environment(task).items():
        argv += ["--env", f"{name}={value}"]
    for name in sorted(stage_env):
        argv += ["--env", name]
    argv += [image_name(task, settings), *task.command]
    return RunCommand(argv=argv, env={**environ, **stage_env})


def _stage_environment(task: StageTask, environ: Mapping[str, str]) -> dict[str, str]:
    """Values a stage gets from the controller's environment and the task (by name only)."""
    constants = _constant_environment(task)
    forwarded = {
        name: value for name, value in environ.items()
        if (name.startswith(FORWARDED_PREFIXES) or name in FORWARDED_NAMES)
        and name not in NOT_FORWARDED and name not in constants
    }  # fmt: skip
    return forwarded | {k: v for k, v in task.env.items() if k not in constants}


def _constant_environment(task: StageTask) -> dict[str, str]:
    return {
        **WRITABLE_ENV,
        "MLBATCH_RUN_URI": task.run_uri,
        "MLBATCH_CODE_VERSION": task.code_version,
    }


def _labels(task: StageTask, *, launched_at: float) -> list[str]:
    labels = {
        "app.kubernetes.io/name": "mlbatch",
        "app.kubernetes.io/component": task.stage,
        f"{LABEL}/run": task.run_id,
        f"{LABEL}/stage": task.stage,
        f"{LABEL}/attempt": task.attempt,
        f"{LABEL}/code-version": task.code_version,
        # What `find` needs to rebuild a handle after a controller restart.
        f"{LABEL}/timeout-s": str(task.timeout_s),
        f"{LABEL}/launched-at": f"{launched_at:.3f}",
    }
    return [arg for name, value in labels.items() for arg in ("--label", f"{name}={value}")]


def _user_and_storage(task: StageTask, settings: ContainerSettings) -> list[str]:
    """Object storage: the images' user. A file:// storage folder: mounted at the same
    path (the run URI stays valid inside) and written as the folder's owner, never root."""
    folder = storage.local_path(RunLayout.from_run_uri(task.run_uri).storage_uri)
    if folder is None:
        return ["--user", STAGE_USER]
    uid, gid = check_storage_owner(folder)
    arguments = ["--user", f"{uid}:{gid}", "--volume", f"{folder}:{folder}"]
    if settings.is_podman and os.geteuid() != 0 and uid == os.geteuid():
        # Rootless podman maps container uids to subordinate ids: keep-id makes the
        # container's uid the user's own, so the files it writes are theirs.
        arguments.append("--userns=keep-id")
    return arguments


def local_source_folders(task: StageTask) -> tuple[Path, ...]:
    """Local folders outside a file:// storage folder that etl reads sources from (e.g.
    `mlbatch run --data FILE`): the container sees them at the same paths, read-only."""
    if task.stage != "etl":
        return ()
    from mlbatch.spec import validate_spec

    layout = RunLayout.from_run_uri(task.run_uri)
    name = task.env.get(runs.SPEC_ENV, runs.SPEC_NAME)
    spec = validate_spec(runs.read_spec(layout, name), source=name)
    storage_folder = storage.local_path(layout.storage_uri)
    folders = set()
    for source in spec.etl.sources.values():
        path = storage.local_path(source.location(layout.storage_uri))
        if path is None:
            continue
        # A glob's folder is the part of the path before its first wildcard.
        parts = path.parts[: next((i for i, p in enumerate(path.parts) if "*" in p), None)]
        folder = Path(*parts) if "*" in str(path) else path.parent
        if storage_folder is None or not folder.is_relative_to(storage_folder):
            folders.add(folder)
    # One mount covers the folders below it.
    return tuple(
        sorted(f for f in folders if not any(f != o and f.is_relative_to(o) for o in folders))
    )


def hand_over_run_folder(task: StageTask) -> None:
    """On file:// storage, give the run folder to the storage folder's owner, whom stages
    run as: a controller running as root created it, and the stage creates its own folder
    in it. Only the folder itself changes owner; spec.json and run.json stay readable."""
    run_folder = storage.local_path(task.run_uri)
    if run_folder is None or os.geteuid() != 0 or not run_folder.exists():
        return
    uid, gid = check_storage_owner(
        storage.local_path(RunLayout.from_run_uri(task.run_uri).storage_uri)
    )
    if run_folder.stat().st_uid != uid:
        os.chown(run_folder, uid, gid)


def check_storage(storage_uri: str) -> None:
    """Refuse, before a run starts, a file:// storage folder that stages would write as root."""
    folder = storage.local_path(storage_uri)
    if folder is not None:
        check_storage_owner(folder)


def check_storage_owner(folder: Path) -> tuple[int, int]:
    """The uid and gid that own a storage folder (or would: the controller's); never root."""
    uid, gid = (folder.stat().st_uid, folder.stat().st_gid) if folder.exists() else (
        os.geteuid(), os.getegid())  # fmt: skip
    if uid == 0:
        raise BadInput(
            f"storage folder {folder} belongs to root, and the container executor never runs "
            f"a stage as root: chown -R {STAGE_USER} {folder} (or to any non-root user), "
            "or use s3:// storage"
        )
    return uid, gid


def _limits(task: StageTask, settings: ContainerSettings) -> list[str]:
    """The stage's resources as limits, as on Kubernetes (limits equal requests there)."""
    resources = task.resources
    memory = memory_bytes(resources.memory)
    # No swap: a stage that fits here fits a pod, and OOMKilled means the same.
    limits = [f"--cpus={cpu_count(resources.cpu)}", f"--memory={memory}",
              f"--memory-swap={memory}"]  # fmt: skip
    if task.stage in SHARED_MEMORY_STAGES:
        # Kubernetes gives Ray a memory-backed emptyDir, bounded by the pod's memory.
        limits.append(f"--shm-size={memory}")
    if resources.gpu > 0:
        if settings.is_podman:
            # Podman reaches NVIDIA GPUs through CDI (`nvidia-ctk cdi generate`).
            limits += [f"--device=nvidia.com/gpu={index}" for index in range(resources.gpu)]
        else:
            limits.append(f"--gpus={resources.gpu}")  # the NVIDIA Container Toolkit
    return limits


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity ("2Gi", "512M", "1e9") in bytes."""
    text = quantity.strip()
    unit = next((u for u in sorted(MEMORY_UNITS, key=len, reverse=True) if text.endswith(u)), "")
    try:
        value = float(text[: len(text) - len(unit)]) * MEMORY_UNITS.get(unit, 1)
    except ValueError:
        raise BadInput(f"memory {quantity!r} is not a quantity like 2Gi or 512Mi") from None
    if value <= 0:
        raise BadInput(f"memory {quantity!r} must be positive")
    return int(value)


def cpu_count(quantity: str) -> str:
    """A Kubernetes CPU quantity ("2", "500m") as the engine's --cpus value."""
    text = quantity.strip()
    try:
        value = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise BadInput(f"cpu {quantity!r} is not a quantity like 2 or 500m") from None
    if value <= 0:
        raise BadInput(f"cpu {quantity!r} must be positive")
    return f"{value:g}"


def _needs_host_network(stage_env: Mapping[str, str]) -> bool:
    endpoint = stage_env.get("AWS_ENDPOINT_URL_S3") or stage_env.get("AWS_ENDPOINT_URL") or ""
    ray = stage_env.get("RAY_ADDRESS", "")
    ray = f"ray://{ray}" if ray and "://" not in ray else ray  # host:port has no scheme
    return any(_is_loopback(urlparse(url).hostname) for url in (endpoint, ray) if url)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ContainerExecutor:
    """Launch each stage attempt as a detached container and map its state to a status."""

    name = "container"

    def __init__(
        self, settings: ContainerSettings | None = None, *, environ: Mapping[str, str] | None = None
    ):
        self.settings = settings or ContainerSettings.from_env()
        self._environ = environ  # None: the controller's environment at each launch
        self._finished: dict[str, StageStatus] = {}  # container -> its final status

    def launch(self, task: StageTask) -> Handle:
        """Start the attempt's container; if it already exists (a restart), adopt it."""
        image = image_name(task, self.settings)
        self._check_image(image)
        launched_at = time.time()
        command = build_run_command(
            task, self.settings, environ=os.environ if self._environ is None else self._environ,
            launched_at=launched_at, source_folders=local_source_folders(task),
        )  # fmt: skip
        hand_over_run_folder(task)
        name = container_name(run_id=task.run_id, stage=task.stage, attempt=task.attempt)
        result = self._engine(*command.argv[1:], env=command.env)
        if result.returncode != 0:
            # Docker and podman both say "already in use" for a name that is taken.
            if "already in use" in result.stderr:
                adopted = self.find(task.run_id, task.stage, task.attempt)
                if adopted is not None:
                    return adopted
            self._engine("rm", "--force", name)  # created but never started
            raise MlbatchError(
                f"{self.settings.engine} could not start {image}: {_last_line(result.stderr)}"
            )
        return self._handle(name, image=image, started=launched_at, timeout_s=task.timeout_s)

    def find(self, run_id: str, stage: str, attempt: str) -> Handle | None:
        """The container of this attempt, if it exists (adoption after a controller restart)."""
        name = container_name(run_id=run_id, stage=stage, attempt=attempt)
        details = self._inspect(name)
        if details is None:
            return None
        labels = details.get("Config", {}).get("Labels") or {}
        if labels.get(f"{LABEL}/run") != run_id:
            raise MlbatchError(f"container {name} exists but does not belong to run {run_id}")
        return self._handle(
            name, image=details.get("Config", {}).get("Image", ""),
            started=float(labels.get(f"{LABEL}/launched-at", time.time())),
            timeout_s=int(labels.get(f"{LABEL}/timeout-s", 3600)),
        )  # fmt: skip

    def poll(self, handle: Handle) -> StageStatus:
        """The attempt's state from the container's; a finished container's output is saved
        to the handle's output file and the container removed."""
        name = handle["container"]
        if name in self._finished:
            return self._finished[name]
        details = self._inspect(name)
        if details is None:
            return StageStatus(
                state=State.FAILED, retryable=True, reason=f"container {name} disappeared"
            )
        status = status_of_container(details.get("State", {}))
        if not status.state.finished and time.time() - handle["started"] > handle["timeout_s"]:
            status = StageStatus(
                state=State.FAILED,
                retryable=True,
                reason=f"timed out after {handle['timeout_s']} s",
            )
        if status.state.finished:
            self.cancel(handle)  # stops it if it still runs, keeps its output, removes it
            self._finished[name] = status
        return status

    def cancel(self, handle: Handle) -> None:
        """Stop the container (SIGTERM, SIGKILL after the grace period) and remove it."""
        name = handle["container"]
        self._engine("stop", f"--time={STOP_TIMEOUT_S}", name)
        self._save_output(name, Path(handle["output"]))
        self._engine("rm", "--force", name)

    def _handle(self, name: str, *, image: str, started: float, timeout_s: int) -> Handle:
        return {
            "executor": self.name, "container": name, "image": image,
            "output": str(self.settings.output_dir / f"{name}.out"),
            "started": started, "timeout_s": timeout_s,
        }  # fmt: skip

    def _check_image(self, image: str) -> None:
        # A registry image is pulled by `run`; a local one missing means it was never built.
        if image.startswith("localhost/") and self._engine("image", "inspect", image).returncode:
            raise BadInput(
                f"image {image} is not built: run `make images` (docs/images.md); "
                "its tag is the stage's code version, so images are rebuilt after code changes"
            )

    def _inspect(self, name: str) -> dict | None:
        result = self._engine("container", "inspect", name)
        if result.returncode != 0:
            return None
        try:
            return json.loads(result.stdout)[0]
        except (ValueError, IndexError) as error:
            raise MlbatchError(f"unreadable `inspect` output for container {name}") from error

    def _save_output(self, name: str, path: Path) -> None:
        result = self._engine("logs", name)
        if result.returncode == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(result.stdout + result.stderr)

    def _engine(
        self, *arguments: str, env: Mapping[str, str] | None = None,
        timeout_s: float = ENGINE_TIMEOUT_S,
    ) -> subprocess.CompletedProcess:  # fmt: skip
        command = [self.settings.engine, *arguments]
        try:
            return subprocess.run(
                command, capture_output=True, text=True, env=env, timeout=timeout_s,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except FileNotFoundError:
            raise BadInput(
                f"container engine {self.settings.engine!r} not found: install podman or "
                "docker, or set MLBATCH_CONTAINER_ENGINE"
            ) from None
        except subprocess.TimeoutExpired:
            raise MlbatchError(
                f"`{self.settings.engine} {arguments[0]}` did not answer in {timeout_s:.0f} s"
            ) from None


def status_of_container(state: Mapping) -> StageStatus:
    """A StageStatus from `inspect`'s State (docker's and podman's share these fields)."""
    status = str(state.get("Status", "")).lower()
    if status in ("created", "configured", "initialized"):
        return StageStatus(state=State.PENDING, reason=status)
    if status in ("running", "paused", "restarting", "stopping"):
        return StageStatus(state=State.RUNNING)
    code = int(state.get("ExitCode", -1))
    if state.get("OOMKilled"):
        return StageStatus(
            state=State.FAILED, exit_code=code, retryable=True,
            reason="OOMKilled: the stage used more than its memory limit; "
            "raise the stage's resources.memory",
        )  # fmt: skip
    if state.get("Error") and code != 0:
        return StageStatus(
            state=State.FAILED, exit_code=code, retryable=True,
            reason=f"the container failed to run: {_last_line(str(state['Error']))}",
        )  # fmt: skip
    return status_from_exit_code(code)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
