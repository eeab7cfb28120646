"""Storage by URI: `file://` (the embedded default) and `s3://` (any S3-compatible server).

boto3 moves objects; `pyarrow.fs.S3FileSystem` reads and writes datasets. S3 is configured
the standard AWS way (AWS_ENDPOINT_URL, AWS_REGION, keys or a workload identity).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from mlbatch.errors import BadInput, StorageError

CHUNK = 1 << 20


@dataclass(frozen=True)
class ObjectInfo:
    uri: str
    size: int
    version: str  # ETag on S3, mtime in ns on file://: changes whenever the content may have


def resolve_uri(location: str, *, base: Path | None = None) -> str:
    """An absolute URI for a location: a URI as is, a plain path made absolute."""
    if location.startswith("s3://"):
        if not urlparse(location).netloc:
            raise BadInput(f"storage URI {location!r} names no bucket")
        return location.rstrip("/")
    if location.startswith("file://"):
        path = location[len("file://") :]
    elif "://" in location:
        raise BadInput(f"unsupported storage URI {location!r}: use file:// or s3://")
    else:
        path = location
    resolved = Path(path).expanduser()
    if not resolved.is_absolute():
        resolved = (base or Path.cwd()) / resolved
    return "file://" + str(resolved.resolve()).rstrip("/")


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts if p)])


def local_path(uri: str) -> Path | None:
    """The filesystem path of a file:// URI, None for remote storage."""
    return Path(uri[len("file://") :]) if uri.startswith("file://") else None


def _split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


@lru_cache(maxsize=1)
def s3_client():
    """One boto3 client per process, from the standard AWS environment."""
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(
        # Self-hosted servers (SeaweedFS, MinIO) want path-style addressing.
        s3={"addressing_style": "path" if endpoint else "auto"},
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=10,
        read_timeout=60,
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    session = boto3.session.Session()  # not boto3.client: its default session caches credentials
    return session.client("s3", endpoint_url=endpoint, region_name=region, config=config)


def _s3_error_code(error: Exception) -> str:
    return str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))


def _not_found(error: Exception) -> bool:
    return _s3_error_code(error) in ("404", "NoSuchKey", "NotFound")


def read_bytes(uri: str) -> bytes:
    """The whole object; FileNotFoundError if it does not exist."""
    path = local_path(uri)
    if path is not None:
        return path.read_bytes()
    bucket, key = _split_s3(uri)
    try:
        return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as error:
        if _not_found(error):
            raise FileNotFoundError(uri) from None
        raise _storage_error("read", uri, error) from error


def write_bytes(uri: str, data: bytes) -> None:
    """Write (or replace) an object atomically: readers see the old or the new content."""
    path = local_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return
    bucket, key = _split_s3(uri)
    try:
        s3_client().put_object(Bucket=bucket, Key=key, Body=data)
    except Exception as error:
        raise _storage_error("write", uri, error) from error


def create_exclusive(uri: str, data: bytes) -> bool:
    """Create an object only if it does not exist yet; False if another writer won.

    The commit primitive: an exclusive create on file://, a conditional put
    (If-None-Match: *) on S3, so of any number of racing writers exactly one wins.
    """
    path = local_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write the content first, then link it into place: link() fails if the name
        # exists, and readers never see a half-written file.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        tmp.write_bytes(data)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
    bucket, key = _split_s3(uri)
    try:
        s3_client().put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        return True
    except Exception as error:
        # 409 ConditionalRequestConflict: a concurrent conditional write is in flight.
        if _s3_error_code(error) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return False
        raise _storage_error("create", uri, error) from error


def stat(uri: str) -> ObjectInfo | None:
    path = local_path(uri)
    if path is not None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return ObjectInfo(uri=uri, size=st.st_size, version=str(st.st_mtime_ns))
    bucket, key = _split_s3(uri)
    try:
        head = s3_client().head_object(Bucket=bucket, Key=key)
    except Exception as error:
        if _not_found(error):
            return None
        raise _storage_error("stat", uri, error) from error
    return ObjectInfo(uri=uri, size=head["ContentLength"], version=head["ETag"].strip('"'))


def exists(uri: str) -> bool:
    return stat(uri) is not None


def list_uris(prefix_uri: str) -> list[str]:
    """Every object under a prefix (recursively), sorted."""
    path = local_path(prefix_uri)
    if path is not None:
        if not path.is_dir():
            return []
        return sorted(
            "file://" + str(p)
            for p in path.rglob("*")
            if p.is_file() and not p.name.endswith(".tmp")
        )
    bucket, key = _split_s3(prefix_uri)
    prefix = key.rstrip("/") + "/" if key else ""
    uris = []
    try:
        for page in (
            s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        ):
            uris += [f"s3://{bucket}/{obj['Key']}" for obj in page.get("Contents", [])]
    except Exception as error:
        raise _storage_error("list", prefix_uri, error) from error
    return sorted(u for u in uris if not u.endswith("/"))


def upload_file(path: Path, uri: str) -> None:
    target = local_path(uri)
    if target is not None:
        if target.resolve() == path.resolve():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        return
    bucket, key = _split_s3(uri)
    try:
        s3_client().upload_file(str(path), bucket, key)
    except Exception as error:
        raise _storage_error("upload", uri, error) from error


def download_file(uri: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    source = local_path(uri)
    if source is not None:
        shutil.copyfile(source, path)
        return
    bucket, key = _split_s3(uri)
    try:
        s3_client().download_file(bucket, key, str(path))
    except Exception as error:
        if _not_found(error):
            raise FileNotFoundError(uri) from None
        raise _storage_error("download", uri, error) from error


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_uri(uri: str) -> str:
    """Content hash of a stored object, streamed (never the whole object in memory)."""
    path = local_path(uri)
    if path is not None:
        return sha256_file(path)
    bucket, key = _split_s3(uri)
    digest = hashlib.sha256()
    try:
        body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in body.iter_chunks(CHUNK):
            digest.update(chunk)
    except Exception as error:
        if _not_found(error):
            raise FileNotFoundError(uri) from None
        raise _storage_error("read", uri, error) from error
    return digest.hexdigest()


def arrow_filesystem(uri: str):
    """(pyarrow filesystem, path) for reading and writing datasets at a URI."""
    from pyarrow import fs

    path = local_path(uri)
    if path is not None:
        return fs.LocalFileSystem(), str(path)
    bucket, key = _split_s3(uri)
    return _arrow_s3(), f"{bucket}/{key}"


@lru_cache(maxsize=1)
def _arrow_s3():
    from pyarrow import fs

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
    return fs.S3FileSystem(**options)


def _storage_error(action: str, uri: str, error: Exception) -> Exception:
    code = _s3_error_code(error) or type(error).__name__
    if code in (
        "NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
        "NoCredentialsError", "PartialCredentialsError",
    ):  # fmt: skip
        return BadInput(f"cannot {action} {uri}: {code}")
    return StorageError(f"cannot {action} {uri}: {code or type(error).__name__}: {error}")
