"""The container executor: the `run` command it builds, and its lifecycle against a fake
engine (a script that answers like podman and keeps its containers in a JSON file)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from mlbatch.controller.container_executor import (
    ContainerExecutor,
    ContainerSettings,
    build_run_command,
    container_name,
    cpu_count,
    hand_over_run_folder,
    local_source_folders,
    memory_bytes,
    status_of_container,
)
from mlbatch.controller.executor import Resources, StageTask, State
from mlbatch.errors import BadInput, MlbatchError

RUN_ID = "20261126-153812-4f0a2c"
SECRET = "s3cr3t-value-never-in-argv"
ENVIRON = {
    "PATH": "/usr/bin:/bin",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:8333",
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_REGION": "us-east-1",
    "AWS_PROFILE": "laptop",  # names a file on the host: not forwarded
    "MLBATCH_STORAGE": "s3://ml",  # the controller's own setting: not forwarded
    "MLBATCH_FEATURE_FLAG": "on",
    "HOME": "/root",
}


def a_task(*, stage: str = "etl", run_uri: str = f"s3://ml/runs/{RUN_ID}", **fields) -> StageTask:
    return StageTask(
        run_id=RUN_ID, run_uri=run_uri, stage=stage, attempt="1-9c1e",
        code_version="0123456789ab", **fields,
    )  # fmt: skip


def command_of(task: StageTask, environ=ENVIRON, source_folders=(), **settings):
    return build_run_command(
        task, ContainerSettings(**settings), environ=environ, launched_at=1_700_000_000.0,
        source_folders=source_folders,
    )  # fmt: skip


def option(argv: list[str], name: str) -> list[str]:
    """The values of an option given as `--name value` or `--name=value`."""
    values = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == name]
    return values + [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"{name}=")]


# ---------------------------------------------------------------- the run command


def test_no_credential_value_is_on_the_command_line():
    command = command_of(a_task(env={"MLBATCH_TOKEN": "task-secret"}))
    line = " ".join(command.argv)
    assert SECRET not in line and "AKIDEXAMPLE" not in line and "task-secret" not in line
    names = option(command.argv, "--env")
    assert {"AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "MLBATCH_TOKEN"} <= set(names)
    # `--env NAME` takes the value from the engine's environment: they are there.
    assert command.env["AWS_SECRET_ACCESS_KEY"] == SECRET
    assert command.env["MLBATCH_TOKEN"] == "task-secret"
    assert command.env["PATH"] == "/usr/bin:/bin"  # the engine itself still runs


def test_the_stage_gets_the_storage_settings_but_not_host_paths_or_controller_settings():
    names = option(command_of(a_task()).argv, "--env")
    assert {"AWS_ENDPOINT_URL", "AWS_REGION", "MLBATCH_FEATURE_FLAG"} <= set(names)
    assert not {"AWS_PROFILE", "MLBATCH_STORAGE", "HOME", "PATH"} & set(names)
    constants = dict(value.split("=", 1) for value in names if "=" in value)
    assert constants["HOME"] == "/tmp" and constants["MPLCONFIGDIR"].startswith("/tmp/")
    assert constants["MLBATCH_RUN_URI"] == f"s3://ml/runs/{RUN_ID}"
    assert constants["MLBATCH_CODE_VERSION"] == "0123456789ab"


def test_the_container_runs_hardened_as_the_images_user_with_the_stage_command():
    task = a_task()
    argv = command_of(task, engine="/usr/bin/podman").argv
    assert argv[:4] == ["/usr/bin/podman", "run", "--detach", "--init"]
    assert option(argv, "--user") == ["65532:65532"]
    assert "--read-only" in argv and "--cap-drop=ALL" in argv
    assert "--security-opt=no-new-privileges" in argv
    assert option(argv, "--tmpfs")[0].startswith("/tmp:")
    assert option(argv, "--name") == [f"mlbatch-{RUN_ID}-etl-1-9c1e"]
    image_at = argv.index("localhost/mlbatch-etl:0123456789ab")
    assert argv[image_at + 1 :] == task.command
    labels = dict(label.split("=", 1) for label in option(argv, "--label"))
    assert labels["mlbatch.io/run"] == RUN_ID and labels["mlbatch.io/stage"] == "etl"
    assert labels["mlbatch.io/attempt"] == "1-9c1e"
    assert labels["mlbatch.io/code-version"] == "0123456789ab"
    assert labels["app.kubernetes.io/component"] == "etl"
    assert labels["mlbatch.io/timeout-s"] == "3600"


def test_the_image_repository_is_a_setting():
    argv = command_of(a_task(), image_repository="registry.example.com/ml/mlbatch").argv
    assert "registry.example.com/ml/mlbatch-etl:0123456789ab" in argv
    env = {"MLBATCH_IMAGE_REPOSITORY": "ghcr.io/me/mlbatch", "MLBATCH_CONTAINER_ENGINE": "docker"}
    settings = ContainerSettings.from_env(environ=env)
    assert settings.image_repository == "ghcr.io/me/mlbatch" and settings.engine == "docker"


@pytest.mark.parametrize(
    ("endpoint", "ray", "network"),
    [
        ("http://127.0.0.1:8333", "", ["host"]),
        ("http://localhost:9000", "", ["host"]),
        ("https://s3.eu-west-1.amazonaws.com", "", []),
        ("https://minio.example.com", "ray://127.0.0.1:10001", ["host"]),
        ("https://minio.example.com", "10.0.0.5:6379", []),
    ],
)
def test_host_network_only_when_storage_or_ray_is_on_loopback(endpoint, ray, network):
    environ = {**ENVIRON, "AWS_ENDPOINT_URL": endpoint}
    if ray:
        environ["RAY_ADDRESS"] = ray
    argv = command_of(a_task(), environ=environ).argv
    assert option(argv, "--network") == network
    assert option(command_of(a_task(), environ=environ, network="mlnet").argv, "--network") == [
        "mlnet"
    ]


def test_resources_become_limits_and_train_gets_shared_memory():
    etl = command_of(a_task(resources=Resources(cpu="500m", memory="2Gi"))).argv
    assert option(etl, "--cpus") == ["0.5"] and option(etl, "--memory") == [str(2 * 2**30)]
    assert option(etl, "--memory-swap") == [str(2 * 2**30)]
    assert option(etl, "--shm-size") == []
    train = command_of(a_task(stage="train", resources=Resources(cpu="2", memory="4Gi"))).argv
    assert option(train, "--shm-size") == [str(4 * 2**30)] and option(train, "--cpus") == ["2"]


def test_gpus_by_cdi_devices_on_podman_and_gpus_on_docker():
    task = a_task(stage="train", resources=Resources(gpu=2))
    podman = command_of(task, engine="podman").argv
    assert option(podman, "--device") == ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
    docker = command_of(task, engine="/usr/local/bin/docker").argv
    assert option(docker, "--gpus") == ["2"] and option(docker, "--device") == []
    no_gpu = command_of(a_task(stage="train"), engine="docker").argv
    assert option(no_gpu, "--gpus") == [] and option(no_gpu, "--device") == []


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("2Gi", 2 * 2**30), ("512Mi", 512 * 2**20), ("1G", 10**9), ("1.5Gi", 3 * 2**29),
     ("1000000", 10**6)],
)  # fmt: skip
def test_memory_quantities(quantity, expected):
    assert memory_bytes(quantity) == expected


def test_cpu_quantities_and_bad_quantities():
    assert cpu_count("2") == "2" and cpu_count("250m") == "0.25" and cpu_count("1.5") == "1.5"
    for bad in ("lots", "0", "-1Gi"):
        with pytest.raises(BadInput):
            memory_bytes(bad)
    with pytest.raises(BadInput):
        cpu_count("two")


def test_file_storage_is_mounted_at_its_own_path_and_written_as_its_owner(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    if os.geteuid() == 0:  # as root, hand the folder to a non-root user, as users must
        os.chown(store, 65532, 65532)
    task = a_task(run_uri=f"file://{store}/runs/{RUN_ID}")
    argv = command_of(task).argv
    owner = store.stat()
    assert option(argv, "--user") == [f"{owner.st_uid}:{owner.st_gid}"]
    assert option(argv, "--volume") == [f"{store}:{store}"]
    assert argv[-4:] == ["--run", f"file://{store}/runs/{RUN_ID}", "--attempt", "1-9c1e"]


def test_etl_sources_outside_file_storage_are_mounted_read_only(tmp_path):
    from mlbatch.runs import RunLayout, write_spec
    from mlbatch.spec import validate_spec

    store, data = tmp_path / "store", tmp_path / "elsewhere"
    sources = {
        "inside": {"uri": "raw/a.csv"},  # under the storage root: already mounted
        "file": {"uri": str(data / "b.csv")},
        "glob": {"uri": f"file://{data}/parts/*/c.csv"},
        "remote": {"uri": "s3://bucket/d.csv"},
    }
    spec = {"name": "t", "target": "y", "task": "binary", "etl": {"sources": sources}}
    layout = RunLayout(f"file://{store}", RUN_ID)
    write_spec(layout, validate_spec(spec).model_dump(mode="json"))
    folders = local_source_folders(a_task(run_uri=layout.uri))
    assert folders == (data,)  # data/parts is below it
    assert local_source_folders(a_task(stage="train", run_uri=layout.uri)) == ()
    argv = command_of(a_task(run_uri="s3://ml/runs/" + RUN_ID), source_folders=folders).argv
    assert f"--volume={data}:{data}:ro" in argv


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root controller makes root-owned runs")
def test_a_root_controllers_run_folder_is_handed_to_the_storage_owner(tmp_path):
    store = tmp_path / "store"
    run_folder = store / "runs" / RUN_ID
    run_folder.mkdir(parents=True)
    (run_folder / "spec.json").write_text("{}")
    os.chown(store, 65532, 65532)
    hand_over_run_folder(a_task(run_uri=f"file://{run_folder}"))
    assert (run_folder.stat().st_uid, run_folder.stat().st_gid) == (65532, 65532)
    assert (run_folder / "spec.json").stat().st_uid == 0  # only the folder itself
    hand_over_run_folder(a_task())  # s3: nothing to do


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a root-owned folder")
def test_a_root_owned_storage_folder_is_refused(tmp_path):
    with pytest.raises(BadInput, match="belongs to root"):
        command_of(a_task(run_uri=f"file://{tmp_path}/runs/{RUN_ID}"))


def test_the_cli_offers_the_container_executor(tmp_path, monkeypatch):
    from mlbatch.controller.cli import _executor

    monkeypatch.setenv("MLBATCH_CONTAINER_ENGINE", "podman")
    executor = _executor("container", "s3://ml", namespace=None, context=None)
    assert executor.name == "container" and executor.settings.engine == "podman"
    if os.geteuid() == 0:
        with pytest.raises(BadInput, match="belongs to root"):
            _executor("container", f"file://{tmp_path}", namespace=None, context=None)


# ---------------------------------------------------------------- container states


@pytest.mark.parametrize(
    ("state", "expected", "retryable"),
    [
        ({"Status": "created"}, State.PENDING, False),
        ({"Status": "running", "Running": True}, State.RUNNING, False),
        ({"Status": "exited", "ExitCode": 0}, State.SUCCEEDED, False),
        ({"Status": "exited", "ExitCode": 2}, State.FAILED, False),
        ({"Status": "exited", "ExitCode": 4}, State.FAILED, False),
        ({"Status": "exited", "ExitCode": 1}, State.FAILED, True),
        ({"Status": "exited", "ExitCode": 137, "OOMKilled": True}, State.FAILED, True),
        ({"Status": "exited", "ExitCode": 127, "Error": "exec: python: not found"}, State.FAILED,
         True),
    ],
)  # fmt: skip
def test_container_states_map_to_stage_states(state, expected, retryable):
    status = status_of_container(state)
    assert status.state == expected and status.retryable == retryable
    if state.get("OOMKilled"):
        assert status.reason.startswith("OOMKilled")
    if state.get("Error"):
        assert "python: not found" in status.reason


# ---------------------------------------------------------------- lifecycle, fake engine

FAKE_ENGINE = r'''#!PYTHON
"""Answers like podman for run, container inspect, image inspect, logs, stop and rm."""
import json, os, sys
state_file = os.environ["FAKE_ENGINE_STATE"]
state = json.load(open(state_file))
args = sys.argv[1:]
state["calls"].append(args)
def save():
    json.dump(state, open(state_file, "w"))
verb = args[0]
if verb == "image":
    save()
    sys.exit(0 if args[2] in state["images"] else 1)
if verb == "run":
    name = args[args.index("--name") + 1]
    if name in state["containers"]:
        save()
        sys.exit(f"Error: the container name \"{name}\" is already in use by abc")
    labels = dict(a.split("=", 1) for i, a in enumerate(args) if args[i - 1] == "--label")
    env_names = [a for i, a in enumerate(args) if args[i - 1] == "--env" and "=" not in a]
    state["environment_seen"] = {n: os.environ.get(n) for n in env_names}
    state["containers"][name] = {"State": {"Status": "running", "Running": True, "ExitCode": 0},
                                 "Config": {"Labels": labels, "Image": "img"}}
    save()
    print("0123abcd")
    sys.exit(0)
name = args[-1]
container = state["containers"].get(name)
if verb == "container":
    save()
    if container is None:
        sys.exit("Error: no such container")
    print(json.dumps([container]))
elif verb == "logs":
    save()
    print("stage output")
    sys.exit(0 if container else 1)
elif verb == "stop":
    if container:
        container["State"] = {"Status": "exited", "ExitCode": 143}
    save()
elif verb == "rm":
    state["containers"].pop(name, None)
    save()
'''


@pytest.fixture
def fake_engine(tmp_path, monkeypatch):
    """A fake podman and its state: {"images": [...], "containers": {...}, "calls": [...]}."""
    engine = tmp_path / "podman"
    engine.write_text(FAKE_ENGINE.replace("PYTHON", sys.executable))
    engine.chmod(0o755)
    state_file = tmp_path / "engine.json"
    state_file.write_text(json.dumps({"images": [], "containers": {}, "calls": []}))
    monkeypatch.setenv("FAKE_ENGINE_STATE", str(state_file))

    class Fake:
        path = str(engine)

        @staticmethod
        def state() -> dict:
            return json.loads(state_file.read_text())

        @staticmethod
        def update(change) -> None:
            data = json.loads(state_file.read_text())
            change(data)
            state_file.write_text(json.dumps(data))

    return Fake


IMAGE = "localhost/mlbatch-features:0123456789ab"


def a_features_task(**fields) -> StageTask:
    """Lifecycle tests use features: etl would first read the run's spec for its sources."""
    return a_task(stage="features", **fields)


def an_executor(fake_engine, tmp_path) -> ContainerExecutor:
    settings = ContainerSettings(engine=fake_engine.path, output_dir=tmp_path / "out")
    environ = {**ENVIRON, "FAKE_ENGINE_STATE": os.environ["FAKE_ENGINE_STATE"]}
    return ContainerExecutor(settings, environ=environ)


def test_launch_poll_and_finish_remove_the_container_and_keep_its_output(fake_engine, tmp_path):
    fake_engine.update(lambda s: s["images"].append(IMAGE))
    executor = an_executor(fake_engine, tmp_path)
    handle = executor.launch(a_features_task())
    name = container_name(run_id=RUN_ID, stage="features", attempt="1-9c1e")
    assert handle["executor"] == "container" and handle["container"] == name
    json.dumps(handle)  # handles go into run.json
    # The secret reached the engine through its environment.
    assert fake_engine.state()["environment_seen"]["AWS_SECRET_ACCESS_KEY"] == SECRET
    assert executor.poll(handle).state == State.RUNNING

    def exit_with(code):
        return lambda s: s["containers"][name].update(State={"Status": "exited", "ExitCode": code})

    fake_engine.update(exit_with(0))
    assert executor.poll(handle).state == State.SUCCEEDED
    assert name not in fake_engine.state()["containers"]  # removed once finished
    assert Path(handle["output"]).read_text().startswith("stage output")
    assert executor.poll(handle).state == State.SUCCEEDED  # remembered after removal


def test_a_restarted_controller_finds_and_adopts_the_container(fake_engine, tmp_path):
    fake_engine.update(lambda s: s["images"].append(IMAGE))
    first = an_executor(fake_engine, tmp_path).launch(a_features_task())
    again = an_executor(fake_engine, tmp_path)
    found = again.find(RUN_ID, "features", "1-9c1e")
    assert found is not None and found["container"] == first["container"]
    assert found["timeout_s"] == 3600 and abs(found["started"] - first["started"]) < 0.01
    assert again.find(RUN_ID, "features", "2-0000") is None
    # Launching the same attempt again adopts the running container ("already in use").
    assert again.launch(a_features_task())["container"] == first["container"]


def test_cancel_stops_and_removes(fake_engine, tmp_path):
    fake_engine.update(lambda s: s["images"].append(IMAGE))
    executor = an_executor(fake_engine, tmp_path)
    handle = executor.launch(a_features_task())
    executor.cancel(handle)
    verbs = [call[0] for call in fake_engine.state()["calls"]]
    assert verbs[-3:] == ["stop", "logs", "rm"]
    assert fake_engine.state()["containers"] == {}
    status = executor.poll(handle)
    assert status.state == State.FAILED and "disappeared" in status.reason


def test_a_timed_out_container_is_stopped(fake_engine, tmp_path):
    fake_engine.update(lambda s: s["images"].append(IMAGE))
    executor = an_executor(fake_engine, tmp_path)
    handle = executor.launch(a_features_task(timeout_s=1)) | {"started": 0.0}
    status = executor.poll(handle)
    assert status.state == State.FAILED and status.retryable and "timed out" in status.reason
    assert fake_engine.state()["containers"] == {}


def test_a_missing_local_image_says_how_to_build_it(fake_engine, tmp_path):
    with pytest.raises(BadInput, match="make images"):
        an_executor(fake_engine, tmp_path).launch(a_features_task())


def test_a_container_of_another_run_is_not_adopted(fake_engine, tmp_path):
    name = container_name(run_id=RUN_ID, stage="features", attempt="1-9c1e")
    fake_engine.update(
        lambda s: s["containers"].update(
            {name: {"State": {"Status": "running"}, "Config": {"Labels": {}}}}
        )
    )
    with pytest.raises(MlbatchError, match="does not belong"):
        an_executor(fake_engine, tmp_path).find(RUN_ID, "features", "1-9c1e")
