"""gc removes what no manifest adopted (outputs, scratch, logs when asked), and nothing else."""

from __future__ import annotations

import time

from mlbatch import gc, runs, storage
from mlbatch.manifest import Manifest, Profile, commit
from mlbatch.runs import RunLayout


def _write(uri: str) -> str:
    storage.write_bytes(uri, b"x")
    return uri


def _finished_run(root: str) -> tuple[RunLayout, dict[str, str]]:
    layout = RunLayout(root, runs.new_run_id())
    runs.write_spec(layout, {"name": "gc-test"})
    runs.write_state(layout, {"state": "failed", "controller": runs.controller_identity()})
    now = time.time()
    commit(layout, Manifest(
        run_id=layout.run_id, stage="train", attempt="2-bbbb", status="succeeded", exit_code=0,
        code_version="c", config_hash="h", profile=Profile(wall_s=1, cpu_s=1, peak_rss_mb=1),
        started=now, finished=now,
    ))  # fmt: skip
    objects = {
        "failed output": _write(f"{layout.attempt_uri('train', '1-aaaa')}/model/model.json"),
        "failed log": _write(f"{layout.log_prefix('train', '1-aaaa')}/000000.log"),
        "failed scratch": _write(f"{layout.scratch_uri('train', '1-aaaa')}/xgboost/tuner.pkl"),
        "adopted output": _write(f"{layout.attempt_uri('train', '2-bbbb')}/model/model.json"),
        "adopted scratch": _write(f"{layout.scratch_uri('train', '2-bbbb')}/xgboost/tuner.pkl"),
        "unfinished etl": _write(f"{layout.attempt_uri('etl', '1-cccc')}/dataset/part-0.parquet"),
    }
    return layout, objects


def test_gc_removes_unadopted_outputs_and_scratch_but_keeps_failure_logs(file_storage):
    layout, objects = _finished_run(file_storage)
    collected = gc.collect(file_storage)
    assert sorted(collected.objects) == sorted(
        objects[k] for k in ("failed output", "failed scratch", "unfinished etl")
    )
    assert all(storage.exists(objects[k]) for k in ("failed log", "adopted output"))
    assert not storage.exists(objects["failed scratch"])


def test_gc_with_logs_and_dry_run(file_storage):
    layout, objects = _finished_run(file_storage)
    planned = gc.collect(file_storage, logs=True, dry_run=True)
    assert objects["failed log"] in planned.objects
    assert all(storage.exists(uri) for uri in objects.values())  # a dry run deletes nothing
    gc.collect(file_storage, logs=True)
    assert not storage.exists(objects["failed log"])


def test_gc_skips_a_run_a_live_controller_drives(file_storage):
    layout, objects = _finished_run(file_storage)
    runs.write_state(layout, {"state": "running", "controller": runs.controller_identity()})
    collected = gc.collect(file_storage)
    assert collected.runs_skipped == [layout.run_id] and collected.objects == []
    assert all(storage.exists(uri) for uri in objects.values())
