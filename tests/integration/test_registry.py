"""The model registry on file:// and on a real S3 server (SeaweedFS): conditional replaces,
version numbers, aliases moved by racing threads and processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mlbatch import registry, storage
from mlbatch.errors import BadInput

WRITERS = 8


@pytest.fixture(params=["file", "s3"])
def root(request) -> str:
    return request.getfixturevalue("file_storage" if request.param == "file" else "s3_env")


def test_replace_if_needs_the_current_version(root):
    uri = storage.join(root, "pointer.json")
    assert not storage.replace_if(uri, b"x", version="anything")  # nothing to match
    assert not storage.exists(uri)
    storage.create_exclusive(uri, b"one")
    first = storage.stat(uri).version
    assert storage.replace_if(uri, b"two", version=first)
    assert storage.read_bytes(uri) == b"two"
    second = storage.stat(uri).version
    assert second != first
    assert not storage.replace_if(uri, b"three", version=first)  # stale: someone moved it
    assert storage.read_bytes(uri) == b"two"
    assert storage.replace_if(uri, b"three", version=second)


def test_replace_if_racing_writers_exactly_one_wins(root):
    uri = storage.join(root, "raced.json")
    storage.create_exclusive(uri, b"start")
    version = storage.stat(uri).version
    wins = []
    barrier = threading.Barrier(WRITERS)

    def write(i: int) -> None:
        barrier.wait()
        if storage.replace_if(uri, f"writer {i}".encode(), version=version):
            wins.append(i)

    _run_threads(write)
    assert len(wins) == 1
    assert storage.read_bytes(uri) == f"writer {wins[0]}".encode()


def test_file_versions_never_repeat_even_within_one_clock_tick(file_storage):
    uri = storage.join(file_storage, "fast.json")
    storage.create_exclusive(uri, b"0")
    seen = {storage.stat(uri).version}
    for i in range(1, 50):  # far faster than the filesystem's timestamp granularity
        assert storage.replace_if(uri, str(i).encode(), version=storage.stat(uri).version)
        seen.add(storage.stat(uri).version)
    assert len(seen) == 50


def _artifacts(tmp_path: Path, text: str) -> dict[str, registry.Artifact]:
    path = tmp_path / f"{text}.txt"
    path.write_text(text)
    return {"model/model.txt": registry.Artifact(path, storage.sha256_file(path), len(text))}


def test_versions_are_numbered_and_a_run_registers_once(root, tmp_path):
    first = registry.register(root, "churn", run_id="run-a", files=_artifacts(tmp_path, "a"),
                              record={"task": "binary"})  # fmt: skip
    second = registry.register(root, "churn", run_id="run-b", files=_artifacts(tmp_path, "b"),
                               record={"task": "binary"})  # fmt: skip
    again = registry.register(root, "churn", run_id="run-a", files=_artifacts(tmp_path, "a"),
                              record={"task": "binary"})  # fmt: skip
    assert (first["version"], second["version"], again["version"]) == (1, 2, 1)
    assert [v["run_id"] for v in registry.versions(root, "churn")] == ["run-a", "run-b"]
    assert registry.model_names(root) == ["churn"]
    stored = storage.join(registry.version_uri(root, "churn", 2), "model/model.txt")
    assert storage.read_bytes(stored) == b"b"
    folder = registry.download_version(root, second, tmp_path / "download")
    assert (folder / "model/model.txt").read_text() == "b"


@pytest.mark.slow
def test_racing_registrations_get_distinct_complete_versions(root, tmp_path):
    artifacts = {i: _artifacts(tmp_path, f"m{i}") for i in range(WRITERS)}
    barrier = threading.Barrier(WRITERS)
    numbers = {}

    def register(i: int) -> None:
        barrier.wait()
        record = registry.register(root, "raced", run_id=f"run-{i}", files=artifacts[i], record={})
        numbers[i] = record["version"]

    _run_threads(register)
    assert sorted(numbers.values()) == list(range(1, WRITERS + 1))
    for i, number in numbers.items():
        assert registry.version_record(root, "raced", number)["run_id"] == f"run-{i}"


def test_alias_moves_only_from_the_state_it_read(root, tmp_path):
    for run in "abc":
        registry.register(root, "m", run_id=run, files=_artifacts(tmp_path, run), record={})
    assert registry.read_alias(root, "m", "production") is None
    created = registry.move_alias(root, "m", "production", version=1, expected=None,
                                  by="test", reason="first")  # fmt: skip
    assert (created.version, created.moves) == (1, 1)
    # a second writer that also saw no alias loses
    assert registry.move_alias(root, "m", "production", version=2, expected=None,
                               by="test", reason="late") is None  # fmt: skip
    moved = registry.move_alias(root, "m", "production", version=2, expected=created,
                                by="test", reason="better")  # fmt: skip
    assert (moved.version, moved.moves) == (2, 2)
    # a writer holding the state before that move loses too
    assert registry.move_alias(root, "m", "production", version=3, expected=created,
                               by="test", reason="stale") is None  # fmt: skip
    current = registry.read_alias(root, "m", "production")
    assert [(h["version"], h["previous"]) for h in current.history] == [(1, None), (2, 1)]
    assert registry.resolve(root, registry.parse_reference("m@production"))["run_id"] == "b"
    assert registry.resolve(root, registry.parse_reference("m:3"))["run_id"] == "c"
    with pytest.raises(BadInput, match="no alias 'staging'"):
        registry.resolve(root, registry.parse_reference("m@staging"))
    with pytest.raises(BadInput, match="no version 9"):
        registry.resolve(root, registry.parse_reference("m:9"))


@pytest.mark.slow
def test_racing_promotions_leave_a_consistent_alias_and_history(root, tmp_path):
    for i in range(WRITERS):
        registry.register(root, "m", run_id=f"r{i}", files=_artifacts(tmp_path, str(i)), record={})
    barrier = threading.Barrier(WRITERS)

    def promote(i: int) -> None:
        barrier.wait()
        registry.set_alias(root, "m", "production", version=i + 1, by=f"writer {i}", reason="race")

    _run_threads(promote)
    writers = [f"writer {i}" for i in range(WRITERS)]
    _check_consistent(registry.read_alias(root, "m", "production"), writers=writers)


@pytest.mark.slow
def test_racing_promotions_from_processes(root, tmp_path):
    for i in range(4):
        registry.register(root, "m", run_id=f"r{i}", files=_artifacts(tmp_path, str(i)), record={})
    script = (
        "import sys; from mlbatch import registry; "
        "registry.set_alias(sys.argv[1], 'm', 'production', version=int(sys.argv[2]), "
        "by='process ' + sys.argv[2], reason='race')"
    )
    versions = (1, 2, 3, 4, 1, 2, 3, 4)
    processes = [
        subprocess.Popen([sys.executable, "-c", script, root, str(v)], env=dict(os.environ))
        for v in versions
    ]
    assert all(p.wait(timeout=120) == 0 for p in processes)
    writers = [f"process {v}" for v in versions]
    _check_consistent(registry.read_alias(root, "m", "production"), writers=writers)


def _check_consistent(alias: registry.Alias, *, writers: list[str]) -> None:
    """Every writer's move is in the history exactly once, each from the one before."""
    assert alias.moves == len(alias.history) == len(writers)
    assert sorted(h["by"] for h in alias.history) == sorted(writers)
    assert [h["move"] for h in alias.history] == list(range(1, len(writers) + 1))
    previous = None
    for move in alias.history:
        assert move["previous"] == previous
        previous = move["version"]
    assert alias.version == previous


def _run_threads(target) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
