"""The pyarrow S3 filesystem, configured the standard AWS way, that pickles without keys.

Ray Tune pickles its storage filesystem into files it writes beside the trials
(tuner.pkl, experiment state), and ships it to trial workers. A plain S3FileSystem
pickles its access and secret keys along, which would put credentials at rest in the
bucket. This one pickles as "build me from the environment": every process that
unpickles it (a stage, a Ray worker on a cluster whose pods carry the same credentials
Secret or workload identity) takes the keys from its own environment.
"""

from __future__ import annotations

import os
from functools import lru_cache
from urllib.parse import urlparse

from pyarrow import fs


class EnvironmentS3FileSystem(fs.S3FileSystem):
    def __reduce__(self):
        return (from_environment, ())


@lru_cache(maxsize=1)
def from_environment() -> EnvironmentS3FileSystem:
    from mlbatch.storage import s3_client

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    options: dict = {"region": region}
    if endpoint:
        parsed = urlparse(endpoint)
        options.update(endpoint_override=parsed.netloc, scheme=parsed.scheme or "https")
    # Take credentials from boto3's chain so both clients agree (keys, profiles, IRSA).
    credentials = s3_client()._request_signer._credentials
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        options.update(
            access_key=frozen.access_key,
            secret_key=frozen.secret_key,
            session_token=frozen.token,
        )
    options["retry_strategy"] = fs.AwsStandardS3RetryStrategy(max_attempts=10)
    return EnvironmentS3FileSystem(**options)
