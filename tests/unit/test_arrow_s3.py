"""The S3 filesystem handed to Ray Tune pickles without credentials."""

from __future__ import annotations

import pickle

import cloudpickle

from mlbatch import arrow_s3


def test_pickles_without_keys_and_rebuilds_from_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value-123")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    arrow_s3.from_environment.cache_clear()
    from mlbatch import storage

    storage.s3_client.cache_clear()
    filesystem = arrow_s3.from_environment()
    for dumps in (pickle.dumps, cloudpickle.dumps):
        blob = dumps(filesystem)
        assert b"very-secret-value-123" not in blob and b"AKIAEXAMPLEKEYID" not in blob
        restored = pickle.loads(blob)
        assert isinstance(restored, arrow_s3.EnvironmentS3FileSystem)
        assert restored.region == "us-east-1"
    arrow_s3.from_environment.cache_clear()
    storage.s3_client.cache_clear()
