"""The stage cache: hits only when nothing changed and the earlier outputs are intact."""

from __future__ import annotations

import shutil

import pytest
from pipeline_checks import check_run, mlbatch, run_json
from small_tables import QUICK, cancer_csv

from mlbatch import cache, storage
from mlbatch.manifest import load_manifest
from mlbatch.runs import RunLayout
from mlbatch.spec import STAGES, validate_spec

pytestmark = pytest.mark.slow


def _run(root: str, data, *extra: str) -> dict:
    result = mlbatch("run", "--data", str(data), "--target", "target", "--storage", root,
                     "-o", "json", *QUICK, *extra)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return run_json(result)


NO_REGISTRY = ("--set", "evaluate.registry.enabled=false")


def test_a_second_run_is_taken_from_the_cache_and_stands_alone(tmp_path, file_storage):
    data = cancer_csv(tmp_path)
    first = _run(file_storage, data, *NO_REGISTRY)
    second = _run(file_storage, data, *NO_REGISTRY)
    assert all(second["stages"][s]["cached_from"] == first["run_id"] for s in STAGES)
    assert second["metrics"] == first["metrics"]
    status = run_json(mlbatch("status", second["run_id"], "--storage", file_storage, "-o", "json"))
    assert status["stages"]["train"]["cached_from"] == first["run_id"]

    # The second run is self-contained: deleting the first leaves it whole.
    shutil.rmtree(storage.local_path(RunLayout(file_storage, first["run_id"]).uri))
    check_run(file_storage, second["run_id"])

    # Its copies are in the cache now: a third run still hits.
    third = _run(file_storage, data, *NO_REGISTRY)
    assert third["stages"]["evaluate"]["cached_from"] == first["run_id"]


def test_an_evaluation_that_registers_is_never_taken_from_the_cache(tmp_path, file_storage):
    """Its promotion compares against an alias that may have moved since; a copy would
    register nothing."""
    data = cancer_csv(tmp_path)
    first = _run(file_storage, data)
    second = _run(file_storage, data)
    assert second["stages"]["train"]["cached_from"] == first["run_id"]
    assert "cached_from" not in second["stages"]["evaluate"]
    registered = [run["metrics"]["promotion"]["version"] for run in (first, second)]
    assert registered == [1, 2]


def test_force_and_spec_changes_rerun_what_they_touch(tmp_path, file_storage):
    data = cancer_csv(tmp_path)
    first = _run(file_storage, data)
    forced = _run(file_storage, data, "--force", "features")
    assert "cached_from" not in forced["stages"]["features"]
    assert forced["stages"]["etl"]["cached_from"] == first["run_id"]

    changed = _run(file_storage, data, "--set", "train.seed=7")
    assert changed["stages"]["features"].get("cached_from")
    assert "cached_from" not in changed["stages"]["train"]


def test_a_damaged_cached_output_is_a_miss(tmp_path, file_storage):
    data = cancer_csv(tmp_path)
    first = _run(file_storage, data)
    layout = RunLayout(file_storage, first["run_id"])
    etl = load_manifest(layout, "etl")[0]
    table = storage.local_path(
        storage.join(layout.attempt_uri("etl", etl.attempt), "table.parquet")
    )
    table.write_bytes(table.read_bytes()[:-10] + b"0123456789")  # same size, other bytes
    second = _run(file_storage, data)
    assert "cached_from" not in second["stages"]["etl"]
    check_run(file_storage, second["run_id"])


def test_editing_a_stage_changes_only_its_key(monkeypatch):
    spec = validate_spec({"name": "k", "target": "y", "etl": {"sources": {"d": {"uri": "d.csv"}}}})
    keys = {s: cache.cache_key(spec=spec, stage=s, upstream={}, external=[]) for s in STAGES}
    real = cache.code_version
    monkeypatch.setattr(cache, "code_version", lambda s: "edited" if s == "train" else real(s))
    edited = {s: cache.cache_key(spec=spec, stage=s, upstream={}, external=[]) for s in STAGES}
    assert [s for s in STAGES if keys[s] != edited[s]] == ["train"]
