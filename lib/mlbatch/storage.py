"""Storage by URI: `file://` (the embedded default) and `s3://` (any S3-compatible server).

boto3 moves objects; `pyarrow.fs.S3FileSystem` reads and writes datasets. S3 is configured
the standard AWS way (AWS_ENDPOINT_URL, AWS_REGION, keys or a workload identity).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from mlbatch import retrying
from mlbatch.errors import BadInput, StorageError

T = TypeVar("T")

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
        # Few tries here: mlbatch.retrying retries whole operations through longer outages.
        retries={"mode": "standard", "max_attempts": 2},
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


def _s3_call(action: str, uri: str, call: Callable[[], T], *, missing_ok: bool = False) -> T:
    """One S3 operation, retried through outages (mlbatch.retrying), errors mapped.

    A missing object raises FileNotFoundError, or returns None with `missing_ok`.
    """
    try:
        return retrying.call(call, describe=f"{action} {uri}")
    except Exception as error:
        if _not_found(error):
            if missing_ok:
                return None  # type: ignore[return-value]
            raise FileNotFoundError(uri) from None
        raise _storage_error(action, uri, error) from error


def read_bytes(uri: str) -> bytes:
    """The whole object; FileNotFoundError if it does not exist."""
    path = local_path(uri)
    if path is not None:
        return path.read_bytes()
    bucket, key = _split_s3(uri)
    return _s3_call(
        "read", uri, lambda: s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    )


def read_chunks(uri: str) -> Iterator[bytes]:
    """The object in chunks of up to CHUNK bytes, never whole in memory (serving a log or a
    report); FileNotFoundError, raised on the first chunk, if it does not exist."""
    path = local_path(uri)
    if path is not None:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk
        return
    bucket, key = _split_s3(uri)
    body = _s3_call("read", uri, lambda: s3_client().get_object(Bucket=bucket, Key=key)["Body"])
    with closing(body):
        yield from body.iter_chunks(CHUNK)


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
    _s3_call("write", uri, lambda: s3_client().put_object(Bucket=bucket, Key=key, Body=data))


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
    tries = 0

    def put() -> bool:
        nonlocal tries
        tries += 1
        try:
            s3_client().put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
            return True
        except Exception as error:
            # 409 ConditionalRequestConflict: a concurrent conditional write is in flight.
            if _s3_error_code(error) not in (
                "PreconditionFailed",
                "412",
                "ConditionalRequestConflict",
            ):
                raise
        # A retried put whose first answer was lost finds its own object: that is a win.
        return tries > 1 and _content_equals(bucket, key, data)

    return _s3_call("create", uri, put)


def replace_if(uri: str, data: bytes, *, version: str) -> bool:
    """Replace an object only if it is still at `version` (as `stat` gave it); False if it
    changed or is gone.

    The primitive that moves pointers: a conditional put (If-Match on the ETag) on S3. On
    file:// writers lock the folder, compare the mtime and give the new content a strictly
    later one: mtimes tick coarsely, and two contents must never share a version.
    """
    path = local_path(uri)
    if path is not None:
        return _replace_file_if(path, data, version)
    bucket, key = _split_s3(uri)
    tries = 0

    def put() -> bool:
        nonlocal tries
        tries += 1
        try:
            s3_client().put_object(Bucket=bucket, Key=key, Body=data, IfMatch=f'"{version}"')
            return True
        except Exception as error:
            if _not_found(error):
                return False
            if _s3_error_code(error) not in (
                "PreconditionFailed", "412", "ConditionalRequestConflict",
            ):  # fmt: skip
                raise
        # A retried put whose first answer was lost finds its own object: that is a win.
        return tries > 1 and _content_equals(bucket, key, data)

    return _s3_call("replace", uri, put)


def _replace_file_if(path: Path, data: bytes, version: str) -> bool:
    import fcntl

    try:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)  # released when the descriptor closes
        try:
            current = path.stat().st_mtime_ns
        except FileNotFoundError:
            return False
        if str(current) != version:
            return False
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        tmp.write_bytes(data)
        stamp = max(time.time_ns(), current + 1)
        os.utime(tmp, ns=(stamp, stamp))
        os.replace(tmp, path)
        return True
    finally:
        os.close(folder)


def _content_equals(bucket: str, key: str, data: bytes) -> bool:
    try:
        return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read() == data
    except Exception:
        return False


def stat(uri: str) -> ObjectInfo | None:
    path = local_path(uri)
    if path is not None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return ObjectInfo(uri=uri, size=st.st_size, version=str(st.st_mtime_ns))
    bucket, key = _split_s3(uri)
    head = _s3_call(
        "stat", uri, lambda: s3_client().head_object(Bucket=bucket, Key=key), missing_ok=True
    )
    if head is None:
        return None
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

    def list_all() -> list[str]:
        pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [f"s3://{bucket}/{obj['Key']}" for page in pages for obj in page.get("Contents", [])]

    return sorted(u for u in _s3_call("list", prefix_uri, list_all) if not u.endswith("/"))


def list_folders(prefix_uri: str) -> list[str]:
    """The names of the folders directly under a prefix, sorted, without listing what is
    inside them (S3: the common prefixes of a delimited listing)."""
    path = local_path(prefix_uri)
    if path is not None:
        if not path.is_dir():
            return []
        return sorted(entry.name for entry in os.scandir(path) if entry.is_dir())
    bucket, key = _split_s3(prefix_uri)
    prefix = key.rstrip("/") + "/" if key else ""

    def list_all() -> list[str]:
        pages = (
            s3_client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
        )
        found = (p["Prefix"] for page in pages for p in page.get("CommonPrefixes", []))
        return [name[len(prefix) :].rstrip("/") for name in found]

    return sorted(_s3_call("list", prefix_uri, list_all))


def delete(uri: str) -> None:
    """Remove an object; a missing one is fine."""
    path = local_path(uri)
    if path is not None:
        path.unlink(missing_ok=True)
        return
    bucket, key = _split_s3(uri)
    _s3_call("delete", uri, lambda: s3_client().delete_object(Bucket=bucket, Key=key))


def copy(source_uri: str, target_uri: str) -> None:
    """Copy an object within one storage without moving the bytes through this process.

    S3: a server-side copy. file://: a hard link (the same bytes, deletable separately),
    or a plain copy across filesystems.
    """
    source, target = local_path(source_uri), local_path(target_uri)
    if source is not None and target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except FileExistsError:
            target.unlink()
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        return
    if source is not None or target is not None:
        raise BadInput(f"cannot copy between storages: {source_uri} -> {target_uri}")
    bucket, key = _split_s3(target_uri)
    source_bucket, source_key = _split_s3(source_uri)
    _s3_call(
        "copy",
        target_uri,
        lambda: s3_client().copy({"Bucket": source_bucket, "Key": source_key}, bucket, key),
    )


def matching(location: str) -> list[ObjectInfo]:
    """The objects a source location names: a file, a glob's matches, or a prefix's files."""
    import fnmatch

    wildcards = [location.find(c) for c in "*?[" if c in location]
    if wildcards:
        prefix = location[: min(wildcards)].rsplit("/", 1)[0]
        uris = [u for u in list_uris(prefix) if fnmatch.fnmatchcase(u, location)]
    else:
        info = stat(location)
        if info is not None:
            return [info]
        uris = list_uris(location)
    return [info for info in map(stat, uris) if info is not None]


def upload_file(path: Path, uri: str) -> None:
    target = local_path(uri)
    if target is not None:
        if target.resolve() == path.resolve():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        return
    bucket, key = _split_s3(uri)
    _s3_call("upload", uri, lambda: s3_client().upload_file(str(path), bucket, key))


def download_file(uri: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    source = local_path(uri)
    if source is not None:
        shutil.copyfile(source, path)
        return
    bucket, key = _split_s3(uri)
    _s3_call("download", uri, lambda: s3_client().download_file(bucket, key, str(path)))


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

    def digest_object() -> str:
        digest = hashlib.sha256()  # anew on every try: a retry restarts the stream
        for chunk in s3_client().get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(CHUNK):
            digest.update(chunk)
        return digest.hexdigest()

    return _s3_call("read", uri, digest_object)


def arrow_filesystem(uri: str):
    """(pyarrow filesystem, path) for reading and writing datasets at a URI."""
    from pyarrow import fs

    path = local_path(uri)
    if path is not None:
        return fs.LocalFileSystem(), str(path)
    from mlbatch import arrow_s3

    bucket, key = _split_s3(uri)
    return arrow_s3.from_environment(), f"{bucket}/{key}"


def _storage_error(action: str, uri: str, error: Exception) -> Exception:
    code = _s3_error_code(error) or type(error).__name__
    if code in (
        "NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
        "NoCredentialsError", "PartialCredentialsError",
    ):  # fmt: skip
        return BadInput(f"cannot {action} {uri}: {code}")
    return StorageError(f"cannot {action} {uri}: {code or type(error).__name__}: {error}")
