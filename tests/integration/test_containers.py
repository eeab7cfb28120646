"""Images built with podman, and the etl stage run in its image by the container executor.

`make base-image` (debootstrap: root) and `make images IMAGE_NAMES=etl` run once per
session, with the layer cache. A base built earlier by the same recipe and CA certificates
(its io.mlbatch.base-recipe label) is reused: on CI's fresh machine there is none.
Podman must be configured for the host (images/podman-config.sh; .ci/run does it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlbatch import logs, storage
from mlbatch.codeversion import code_version
from mlbatch.controller.container_executor import (
    ContainerExecutor,
    ContainerSettings,
    build_run_command,
)
from mlbatch.controller.executor import StageTask, State
from mlbatch.controller.runner import stage_task
from mlbatch.manifest import load_manifest
from mlbatch.runs import RunLayout, new_attempt_id, new_run_id, write_spec
from mlbatch.spec import STAGES, validate_spec

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # a first build from scratch

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/mlbatch-base:bookworm"
IN_CI = os.environ.get("CI", "").lower() == "true"
HINT = (
    "on hosts like our build machines podman needs runc and lower ulimits: "
    'eval "$(images/podman-config.sh /var/tmp/mlbatch-podman)" (docs/images.md)'
)
ROWS = 240


def unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message}; CI=true, so this fails instead of skipping")
    pytest.skip(message)


@pytest.fixture(scope="session")
def say(pytestconfig):
    """Print a line even while pytest captures output (the step timings)."""
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")

    def say(line: str) -> None:
        with capture.global_and_fixture_disabled():
            print(line, flush=True)

    return say


@pytest.fixture(scope="session")
def podman() -> str:
    path = shutil.which("podman")
    if path is None:
        unavailable("podman is not installed (apt-get install podman runc debootstrap)")
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        unavailable("the base image needs debootstrap and root")
    return path


def timed(say, step: str, command: list[str], *, env: dict | None = None) -> None:
    started = time.monotonic()
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=1700, env=env
    )
    say(f"[containers] {step}: {time.monotonic() - started:.1f} s")
    output = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0, f"{step} failed:\n{output}\n({HINT})"


@pytest.fixture(scope="session")
def base_image(podman, say) -> str:
    # Kept when it was built from this recipe (its io.mlbatch.base-recipe label).
    timed(say, "make base-image", ["make", "base-image", f"CONTAINER_ENGINE={podman}"])
    return BASE_IMAGE


@pytest.fixture(scope="session")
def etl_image(podman, base_image, say) -> str:
    """The etl image, tagged with the code version this process gives etl tasks."""
    # Pinned, so a source edited during the build cannot make the tag and the task differ.
    version = {"MLBATCH_CODE_VERSION": code_version("etl")}
    timed(say, "make images IMAGE_NAMES=etl", [
        "make", "images", "IMAGE_NAMES=etl", f"BASE_IMAGE={base_image}",
        f"CONTAINER_ENGINE={podman}", f"IMAGES_PYTHON={sys.executable}",
    ], env=os.environ | version)  # fmt: skip
    return podman


def small_table() -> bytes:
    lines = ["amount,city,label"]
    cities = ["oslo", "lima", "pune"]
    lines += [f"{i * 1.5},{cities[i % 3]},{int(i % 3 == 0)}" for i in range(ROWS)]
    return ("\n".join(lines) + "\n").encode()


def new_etl_run(storage_uri: str, source_uri: str) -> StageTask:
    """A run whose spec reads one CSV; the launch request of its etl stage."""
    spec = validate_spec({
        "name": "container-etl", "target": "label", "task": "binary",
        "etl": {"sources": {"table": {"uri": source_uri}}},
    })  # fmt: skip
    layout = RunLayout(storage_uri, new_run_id())
    write_spec(layout, spec.model_dump(mode="json"))
    return stage_task(spec, layout, "etl", new_attempt_id(1), env={})


def run_to_the_end(executor: ContainerExecutor, task: StageTask, say) -> dict:
    """Launch, inspect the live container, poll to the end; the container's inspect data."""
    started = time.monotonic()
    handle = executor.launch(task)
    # The container stays until `poll` sees it finish, so this inspect never races.
    inspected = subprocess.run(
        [executor.settings.engine, "container", "inspect", handle["container"]],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    while not (status := executor.poll(handle)).state.finished:
        assert time.monotonic() - started < 600, "the etl container ran for 10 minutes"
        time.sleep(0.5)
    say(f"[containers] etl in its container: {time.monotonic() - started:.1f} s")
    output = Path(handle["output"]).read_text() if Path(handle["output"]).exists() else ""
    assert status.state == State.SUCCEEDED, f"{status.reason}\n{output[-3000:]}"
    return json.loads(inspected.stdout)[0]


def check_committed(task: StageTask) -> None:
    """etl committed from this attempt, with this code version, outputs as listed."""
    layout = RunLayout.from_run_uri(task.run_uri)
    loaded = load_manifest(layout, "etl")
    assert loaded is not None, "etl did not commit"
    manifest = loaded[0]
    assert manifest.status == "succeeded" and manifest.exit_code == 0
    assert manifest.attempt == task.attempt and manifest.code_version == task.code_version
    assert manifest.outputs and manifest.metrics
    for path, output in manifest.outputs.items():
        uri = storage.join(layout.attempt_uri("etl", task.attempt), path)
        assert storage.sha256_uri(uri) == output.sha256, uri
    assert [i for i in manifest.inputs if i.kind == "external"]
    assert "committed" in logs.read_log(layout.log_prefix("etl", task.attempt)).decode()


def test_etl_runs_in_its_image_against_the_hosts_s3(etl_image, s3_env, tmp_path, say):
    storage.write_bytes(storage.join(s3_env, "raw/small.csv"), small_table())
    task = new_etl_run(s3_env, "raw/small.csv")
    settings = ContainerSettings(engine=etl_image, output_dir=tmp_path / "output")
    inspected = run_to_the_end(ContainerExecutor(settings), task, say)
    assert inspected["Config"]["User"] == "65532:65532"
    assert inspected["HostConfig"]["ReadonlyRootfs"] is True
    assert inspected["HostConfig"]["NetworkMode"] == "host"  # SeaweedFS is on loopback
    assert "AWS_SECRET_ACCESS_KEY" not in " ".join(inspected.get("Args", []))
    check_committed(task)
    # The same flags, another command: what the stage saw from inside.
    probe = build_run_command(task, settings, environ=os.environ, launched_at=time.time())
    argv = probe.argv[: probe.argv.index(f"localhost/mlbatch-etl:{task.code_version}") + 1]
    argv[argv.index("--detach")] = "--rm"
    argv[argv.index("--name") + 1] += "-probe"
    seen = subprocess.run(
        [*argv, "sh", "-c", "id -u; touch /probe 2>&1; touch /tmp/probe && echo tmp-writable"],
        env=probe.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert seen.stdout.splitlines()[0] == "65532", seen.stdout + seen.stderr
    assert "Read-only file system" in seen.stdout and "tmp-writable" in seen.stdout


def test_file_storage_is_mounted_at_its_own_path(etl_image, tmp_path, say):
    store, data = tmp_path / "store", tmp_path / "data"
    store.mkdir()
    data.mkdir()
    (data / "small.csv").write_bytes(small_table())  # outside the store: mounted read-only
    if os.geteuid() == 0:  # stages never run as root: the store belongs to someone else,
        os.chown(store, 65532, 65532)  # and the run folder a root controller makes is handed over
    task = new_etl_run(f"file://{store}", str(data / "small.csv"))
    settings = ContainerSettings(engine=etl_image, output_dir=tmp_path / "output")
    inspected = run_to_the_end(ContainerExecutor(settings), task, say)
    owner = store.stat()
    assert inspected["Config"]["User"] == f"{owner.st_uid}:{owner.st_gid}"
    check_committed(task)  # the run URI (file://<store>/runs/<id>) was valid inside too
    written = Path(storage.local_path(task.run_uri)) / "etl" / "_manifest.json"
    assert written.stat().st_uid == owner.st_uid


# Imports every module of the stage's package (entry points aside: they run the stage).
IMPORT_ALL = """
import importlib, pkgutil, sys
package = importlib.import_module(sys.argv[1])
names = [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
for name in names:
    if not name.endswith(".__main__"):
        importlib.import_module(name)
"""


@pytest.mark.parametrize("stage", [*STAGES, "predict"])
def test_every_module_of_a_stage_imports_in_its_image(podman, stage):
    """The shared runtime must carry all a stage imports, run as the image runs it (read-only,
    no network, not root). .ci/run builds every image first."""
    image = f"localhost/mlbatch-{stage}:{code_version(stage)}"
    if subprocess.run([podman, "image", "exists", image]).returncode != 0:
        unavailable(f"{image} is not built (make images)")
    result = subprocess.run(
        [podman, "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--user", "65532:65532",
         "--network=none", image, "python", "-c", IMPORT_ALL, f"mlbatch_jobs.{stage}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
