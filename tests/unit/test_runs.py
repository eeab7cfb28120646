"""The run model: run ids, layout, the immutable spec, run state, listing, named runs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from mlbatch import runs, storage
from mlbatch.errors import BadInput
from mlbatch.runs import RunLayout


def test_new_run_id_format():
    run_id = runs.new_run_id(datetime(2026, 11, 26, 9, 5, 7, tzinfo=UTC))
    assert re.fullmatch(r"20261126-090507-[a-z0-9]{6}", run_id)
    assert run_id == run_id.lower()
    assert runs.check_run_id(run_id) == run_id
    ids = {runs.new_run_id() for _ in range(200)}
    assert len(ids) == 200  # the random suffix keeps ids of the same second apart
    assert all(runs.RUN_ID_PATTERN.match(i) for i in ids)
    # valid as (part of) a Kubernetes Job name: a DNS-1123 label
    assert all(re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", i) for i in ids)


def test_run_ids_sort_by_time():
    start = datetime(2026, 1, 31, 23, 59, 58, tzinfo=UTC)
    times = [start + timedelta(seconds=s) for s in (0, 1, 2, 3, 3601, 86400 * 40)]
    ids = [runs.new_run_id(t) for t in times]
    assert sorted(ids) == ids
    assert sorted(reversed(ids)) == ids


def test_new_attempt_id():
    attempt = runs.new_attempt_id(3)
    assert re.fullmatch(r"3-[0-9a-f]{4}", attempt)
    assert runs.ATTEMPT_PATTERN.match(attempt)


@pytest.mark.parametrize(
    "bad", ["", "20261126-090507", "20261126-090507-ABCDEF", "2026112-090507-abcdef", "x/../y"]
)
def test_check_run_id_refuses(bad):
    with pytest.raises(BadInput, match="YYYYMMDD-HHMMSS-xxxxxx"):
        runs.check_run_id(bad)


def test_layout_paths():
    layout = RunLayout("s3://bucket/prefix", "20261126-090507-abc123")
    run = "s3://bucket/prefix/runs/20261126-090507-abc123"
    assert layout.uri == run
    assert layout.spec_uri == f"{run}/spec.json"
    assert layout.state_uri == f"{run}/run.json"
    assert layout.manifest_uri("train") == f"{run}/train/_manifest.json"
    assert layout.attempt_uri("train", "1-ab12") == f"{run}/train/attempts/1-ab12"
    assert layout.log_prefix("train", "1-ab12") == f"{run}/train/attempts/1-ab12/logs"
    assert runs.runs_prefix("file:///data/store") == "file:///data/store/runs"


@pytest.mark.parametrize("root", ["s3://bucket", "s3://bucket/some/prefix", "file:///tmp/store"])
def test_from_run_uri_roundtrip(root):
    layout = RunLayout(root, "20261126-090507-abc123")
    assert RunLayout.from_run_uri(layout.uri) == layout
    assert RunLayout.from_run_uri(layout.uri + "/") == layout


@pytest.mark.parametrize(
    "bad",
    [
        "s3://bucket/20261126-090507-abc123",  # no /runs/
        "s3://bucket/runs/not-a-run-id",
        "s3://bucket/runs/20261126-090507-abc123/train",  # a stage, not a run
        "file:///tmp/store/runs/",
    ],
)
def test_from_run_uri_refuses(bad):
    with pytest.raises(BadInput):
        RunLayout.from_run_uri(bad)


def test_write_spec_once(file_storage):
    layout = RunLayout(file_storage, runs.new_run_id())
    runs.write_spec(layout, {"name": "demo", "target": "y"})
    assert runs.read_spec(layout) == {"name": "demo", "target": "y"}
    with pytest.raises(BadInput, match="already exists"):
        runs.write_spec(layout, {"name": "other"})
    assert runs.read_spec(layout) == {"name": "demo", "target": "y"}  # unchanged


def test_read_spec_of_missing_run(file_storage):
    with pytest.raises(BadInput, match="spec.json is missing"):
        runs.read_spec(RunLayout(file_storage, runs.new_run_id()))


def test_read_write_state(file_storage):
    layout = RunLayout(file_storage, runs.new_run_id())
    assert runs.read_state(layout) is None
    runs.write_state(layout, {"state": "running", "stages": {"etl": {"attempts": 1}}})
    state = runs.read_state(layout)
    assert state["state"] == "running" and state["stages"] == {"etl": {"attempts": 1}}
    assert isinstance(state["updated"], float)
    runs.write_state(layout, {"state": "succeeded"})  # the controller rewrites it
    assert runs.read_state(layout)["state"] == "succeeded"
    assert storage.list_uris(layout.uri) == [layout.state_uri]  # no temp files left


def test_list_run_ids_newest_first(file_storage):
    assert runs.list_run_ids(file_storage) == []
    start = datetime(2026, 3, 1, tzinfo=UTC)
    ids = [runs.new_run_id(start + timedelta(minutes=m)) for m in (5, 0, 90, 30)]
    for run_id in ids:
        runs.write_spec(RunLayout(file_storage, run_id), {"name": run_id})
    # noise the listing must ignore: a run without a spec, a non-run dir, a name binding
    storage.write_bytes(storage.join(file_storage, "runs", runs.new_run_id(), "run.json"), b"{}")
    storage.write_bytes(storage.join(file_storage, "runs", "scratch", "spec.json"), b"{}")
    runs.run_id_for_name(file_storage, "nightly")
    assert runs.list_run_ids(file_storage) == sorted(ids, reverse=True)


def test_run_id_for_name(file_storage):
    first = runs.run_id_for_name(file_storage, "nightly-2026-11-26")
    assert runs.RUN_ID_PATTERN.match(first)
    assert runs.run_id_for_name(file_storage, "nightly-2026-11-26") == first  # a restart
    other = runs.run_id_for_name(file_storage, "nightly-2026-11-27")
    assert other != first
    # a name that already is a run id is that run
    assert runs.run_id_for_name(file_storage, first) == first


@pytest.mark.parametrize("bad", ["Nightly", "has_underscore", "-leading", "trailing-", ""])
def test_run_id_for_name_refuses_non_dns_names(file_storage, bad):
    with pytest.raises(BadInput, match="DNS name"):
        runs.run_id_for_name(file_storage, bad)


def test_a_run_is_found_by_the_name_it_was_bound_to(tmp_path):
    root = f"file://{tmp_path}"
    run_id = runs.run_id_for_name(root, "mlbatch-20261202-demo")
    assert runs.run_id_named(root, "mlbatch-20261202-demo") == run_id
    assert runs.run_id_named(root, "no-such-name") is None
    assert runs.run_id_named(root, run_id) is None  # an id is not a name
