"""The storage layer on file:// and on a real S3 server (SeaweedFS)."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlbatch import storage
from mlbatch.errors import BadInput


@pytest.fixture(params=["file", "s3"])
def root(request) -> str:
    """A storage root URI: file:// under tmp_path, or a fresh bucket on SeaweedFS."""
    return request.getfixturevalue("file_storage" if request.param == "file" else "s3_env")


def test_write_read_stat_exists(root):
    uri = storage.join(root, "a", "b.txt")
    assert not storage.exists(uri)
    assert storage.stat(uri) is None
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(uri)

    storage.write_bytes(uri, b"hello")
    assert storage.read_bytes(uri) == b"hello"
    info = storage.stat(uri)
    assert info is not None and info.uri == uri and info.size == 5 and info.version
    assert storage.exists(uri)

    storage.write_bytes(uri, b"hello, again")  # replace
    assert storage.read_bytes(uri) == b"hello, again"
    assert storage.stat(uri).size == 12


def test_version_changes_with_content(root):
    uri = storage.join(root, "v.txt")
    storage.write_bytes(uri, b"one")
    first = storage.stat(uri).version
    storage.write_bytes(uri, b"two, longer")
    assert storage.stat(uri).version != first


def test_list_uris_recursive_sorted_and_prefix_bounded(root):
    for name in ["p/b.txt", "p/a.txt", "p/sub/c.txt", "pq/other.txt", "top.txt"]:
        storage.write_bytes(storage.join(root, name), name.encode())
    assert storage.list_uris(storage.join(root, "p")) == [
        storage.join(root, "p/a.txt"),
        storage.join(root, "p/b.txt"),
        storage.join(root, "p/sub/c.txt"),
    ]
    # a trailing slash means the same prefix; a sibling with a longer name is not under it
    assert storage.list_uris(storage.join(root, "p") + "/") == storage.list_uris(
        storage.join(root, "p")
    )
    assert storage.list_uris(storage.join(root, "missing")) == []
    assert len(storage.list_uris(root)) == 5


def test_list_folders_names_only_the_level_below(root):
    for name in ["runs/b/spec.json", "runs/a/x/y.txt", "runs/file.txt", "runsx/c/d.txt"]:
        storage.write_bytes(storage.join(root, name), b"1")
    assert storage.list_folders(storage.join(root, "runs")) == ["a", "b"]
    assert storage.list_folders(storage.join(root, "missing")) == []


def test_upload_download_sha256(root, tmp_path):
    payload = bytes(range(256)) * 9000  # > 2 MiB: several hash chunks, a multipart-size body
    source = tmp_path / "source.bin"
    source.write_bytes(payload)
    uri = storage.join(root, "blobs", "payload.bin")

    storage.upload_file(source, uri)
    assert storage.stat(uri).size == len(payload)
    expected = hashlib.sha256(payload).hexdigest()
    assert storage.sha256_file(source) == expected
    assert storage.sha256_uri(uri) == expected

    target = tmp_path / "down" / "deep" / "payload.bin"  # parents are created
    storage.download_file(uri, target)
    assert target.read_bytes() == payload

    with pytest.raises(FileNotFoundError):
        storage.download_file(storage.join(root, "blobs", "nope.bin"), tmp_path / "x")
    with pytest.raises(FileNotFoundError):
        storage.sha256_uri(storage.join(root, "blobs", "nope.bin"))


def test_arrow_filesystem_parquet_roundtrip(root):
    table = pa.table({"x": list(range(100)), "name": [f"n{i}" for i in range(100)]})
    uri = storage.join(root, "data", "table.parquet")
    filesystem, path = storage.arrow_filesystem(uri)
    if storage.local_path(uri) is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, filesystem=filesystem)

    assert storage.exists(uri)  # visible to boto3 / the file API as well
    assert pq.read_table(path, filesystem=filesystem).equals(table)

    # a partitioned dataset under a prefix reads back whole
    dataset_uri = storage.join(root, "data", "dataset")
    dfs, dpath = storage.arrow_filesystem(dataset_uri)
    pq.write_to_dataset(
        table.append_column("part", pa.array([i % 3 for i in range(100)])),
        dpath,
        filesystem=dfs,
        partition_cols=["part"],
    )
    back = pq.read_table(dpath, filesystem=dfs)
    assert back.num_rows == 100
    assert sorted(back.column("x").to_pylist()) == list(range(100))


def test_concurrent_writes_of_one_object_never_tear(root):
    """Threads of one process rewriting one object (the controller's run.json): no errors,
    and the object is always one writer's whole content."""
    uri = storage.join(root, "run.json")
    payloads = [bytes([65 + i]) * 50_000 for i in range(4)]
    errors: list[BaseException] = []

    def write(payload: bytes) -> None:
        for _ in range(20):
            try:
                storage.write_bytes(uri, payload)
                assert storage.read_bytes(uri) in payloads
            except BaseException as error:
                errors.append(error)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    assert storage.read_bytes(uri) in payloads
    assert storage.list_uris(root) == [uri]  # no temp files left behind


def test_create_exclusive_first_writer_wins(root):
    uri = storage.join(root, "runs", "x", "_manifest.json")
    assert storage.create_exclusive(uri, b"first") is True
    assert storage.create_exclusive(uri, b"second") is False
    assert storage.read_bytes(uri) == b"first"
    assert storage.list_uris(storage.join(root, "runs")) == [uri]  # no temp files left


def test_resolve_uri_relative_and_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.resolve_uri("store") == f"file://{tmp_path.resolve()}/store"
    assert storage.resolve_uri("store/", base=Path("/srv")) == "file:///srv/store"
    assert storage.resolve_uri("/abs/path/") == "file:///abs/path"
    assert storage.resolve_uri("file:///abs/path") == "file:///abs/path"
    assert storage.resolve_uri("file://rel/dir") == f"file://{tmp_path.resolve()}/rel/dir"
    assert storage.resolve_uri("~/x").startswith("file:///")
    assert storage.resolve_uri("s3://bucket/prefix/") == "s3://bucket/prefix"
    assert storage.resolve_uri("s3://bucket") == "s3://bucket"


@pytest.mark.parametrize("location", ["gs://bucket/x", "http://host/x", "hdfs://nn/x", "s3://"])
def test_resolve_uri_bad_schemes(location):
    with pytest.raises(BadInput, match="://"):
        storage.resolve_uri(location)


def test_local_path_and_join():
    assert storage.local_path("file:///a/b") == Path("/a/b")
    assert storage.local_path("s3://bucket/a") is None
    assert storage.join("s3://b/", "/runs/", "x", "") == "s3://b/runs/x"


@pytest.mark.parametrize("wrong", ["secret", "key"])
def test_wrong_credentials_are_bad_input_naming_the_uri(s3_env, monkeypatch, wrong):
    uri = storage.join(s3_env, "secret.txt")
    storage.write_bytes(uri, b"x")
    variable = "AWS_SECRET_ACCESS_KEY" if wrong == "secret" else "AWS_ACCESS_KEY_ID"
    monkeypatch.setenv(variable, "WRONG" + "0" * 20)
    storage.s3_client.cache_clear()
    with pytest.raises(BadInput) as caught:
        storage.read_bytes(uri)
    message = str(caught.value)
    assert uri in message and "\n" not in message
    assert "SignatureDoesNotMatch" in message or "InvalidAccessKeyId" in message
    with pytest.raises(BadInput, match="secret.txt"):
        storage.write_bytes(uri, b"y")


def test_missing_bucket_is_bad_input(s3_env):
    # (SeaweedFS creates a bucket on a PUT to a missing one, so this reads and lists.)
    uri = s3_env + "-does-not-exist/x.txt"
    with pytest.raises(BadInput, match="NoSuchBucket"):
        storage.read_bytes(uri)
    with pytest.raises(BadInput, match="does-not-exist"):
        storage.list_uris(s3_env + "-does-not-exist/runs")
