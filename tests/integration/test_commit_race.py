"""Racing commits of one stage leave exactly one manifest: the winner's (DESIGN §1).

On SeaweedFS the commit is a conditional put (If-None-Match: *); on file:// an exclusive
create. Racers are released together by a barrier, as threads and as processes.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import pytest

from mlbatch import storage
from mlbatch.manifest import Manifest, Profile, commit, load_manifest
from mlbatch.runs import RunLayout, new_run_id

STAGE = "features"


def make_manifest(run_id: str, attempt: str) -> Manifest:
    now = time.time()
    return Manifest(
        run_id=run_id,
        stage=STAGE,
        attempt=attempt,
        status="succeeded",
        exit_code=0,
        code_version="test",
        config_hash="0" * 16,
        outputs={"data.parquet": {"size": len(attempt), "sha256": attempt * 4}},
        metrics={"racer": attempt},
        profile=Profile(wall_s=1.0, cpu_s=1.0, peak_rss_mb=1.0),
        started=now,
        finished=now,
    )


def _race(storage_uri: str, run_id: str, attempt: str, barrier) -> bool:
    manifest = make_manifest(run_id, attempt)
    layout = RunLayout(storage_uri, run_id)
    barrier.wait(timeout=60)
    return commit(layout, manifest)


def _race_in_process(
    storage_uri: str, run_id: str, attempt: str, barrier, results, aws_env: dict
) -> None:
    # The forkserver's environment is the one it started with, not the test's: take ours.
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(aws_env)
    try:
        results.put((attempt, _race(storage_uri, run_id, attempt, barrier)))
    except BaseException as error:  # report, so the parent fails with the reason
        results.put((attempt, f"{type(error).__name__}: {error}"))


def race_threads(storage_uri: str, run_id: str, racers: int) -> dict[str, bool]:
    barrier = threading.Barrier(racers)
    results: dict[str, bool | str] = {}

    def run(attempt: str) -> None:
        try:
            results[attempt] = _race(storage_uri, run_id, attempt, barrier)
        except BaseException as error:
            results[attempt] = f"{type(error).__name__}: {error}"

    threads = [threading.Thread(target=run, args=(f"{i + 1}-t{i:03d}",)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def race_processes(storage_uri: str, run_id: str, racers: int) -> dict[str, bool]:
    # forkserver: children start clean (no client sockets shared as with fork), and fast
    # (the preloaded imports are done once, not 16 times as with spawn).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["mlbatch.manifest", "boto3", "botocore.session"])
    barrier = context.Barrier(racers)
    results = context.Queue()
    aws_env = {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
    processes = [
        context.Process(
            target=_race_in_process,
            args=(storage_uri, run_id, f"{i + 1}-p{i:03d}", barrier, results, aws_env),
        )
        for i in range(racers)
    ]
    for process in processes:
        process.start()
    outcome = dict(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    return outcome


def check_one_winner(storage_uri: str, run_id: str, results: dict, racers: int) -> None:
    assert len(results) == racers
    errors = {a: r for a, r in results.items() if not isinstance(r, bool)}
    assert not errors, errors
    winners = [attempt for attempt, won in results.items() if won]
    assert len(winners) == 1, results

    layout = RunLayout(storage_uri, run_id)
    loaded = load_manifest(layout, STAGE)
    assert loaded is not None
    manifest, digest = loaded
    assert manifest.attempt == winners[0]
    assert manifest.metrics == {"racer": winners[0]}
    times = {"started", "finished"}
    assert manifest.model_dump(exclude=times) == make_manifest(run_id, winners[0]).model_dump(
        exclude=times
    )
    # exactly one object under the stage: the manifest (no temp files, no second copy)
    assert storage.list_uris(storage.join(layout.uri, STAGE)) == [layout.manifest_uri(STAGE)]

    # a latecomer loses too, and the manifest stays the winner's
    late = make_manifest(run_id, "99-late")
    assert commit(layout, late) is False
    assert load_manifest(layout, STAGE) == (manifest, digest)


@pytest.mark.parametrize("racers", [2, 16])
def test_threads_race_on_seaweedfs(s3_env, racers):
    run_id = new_run_id()
    check_one_winner(s3_env, run_id, race_threads(s3_env, run_id, racers), racers)


@pytest.mark.parametrize("racers", [2, 16])
def test_threads_race_on_file(file_storage, racers):
    run_id = new_run_id()
    check_one_winner(file_storage, run_id, race_threads(file_storage, run_id, racers), racers)


@pytest.mark.parametrize("racers", [2, 16])
def test_processes_race_on_seaweedfs(s3_env, racers):
    run_id = new_run_id()
    check_one_winner(s3_env, run_id, race_processes(s3_env, run_id, racers), racers)


@pytest.mark.parametrize("racers", [2, 16])
def test_processes_race_on_file(file_storage, racers):
    run_id = new_run_id()
    check_one_winner(file_storage, run_id, race_processes(file_storage, run_id, racers), racers)


def test_repeated_races_on_seaweedfs(s3_env):
    """Several fresh stages, 8 racers each: never zero winners, never two."""
    for _ in range(3):
        run_id = new_run_id()
        check_one_winner(s3_env, run_id, race_threads(s3_env, run_id, 8), 8)
