"""The files a source names: one file, a glob or a prefix, on file:// or s3://."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from mlbatch import storage
from mlbatch.errors import BadInput
from mlbatch.raw_tables import detect_format
from mlbatch.spec.etl import Source, key_scope

GLOB_CHARS = "*?["

Stat = Callable[[str], "storage.ObjectInfo | None"]


@dataclass(frozen=True)
class SourceFile:
    """One file of a source."""

    uri: str
    size: int
    format: str  # csv, parquet, jsonl or xlsx
    compression: str | None  # gzip, bz2, zstd, zip, or None

    @property
    def splittable(self) -> bool:
        """Whether parts of the file can be read on their own (by byte range or row group)."""
        return self.compression is None and self.format != "xlsx"


def resolve_files(
    name: str, source: Source, storage_uri: str, *, stat: Stat = storage.stat
) -> list[SourceFile]:
    """The source's files, sorted, with size and format; BadInput when there are none.

    `stat` is called once per file (the stage passes `ctx.record_external`, which records
    each one as an input of the run).
    """
    location = source.location(storage_uri)
    if any(char in location for char in GLOB_CHARS):
        uris = _glob(location)
        if not uris:
            raise BadInput(f"source {name}: no file matches {location}")
    else:
        prefix = source.uri.endswith("/") or _is_local_folder(location)
        if not prefix and storage.exists(location):
            uris = [location]
        else:
            uris = [uri for uri in storage.list_uris(location) if _data_file(location, uri)]
            if not uris:
                raise BadInput(f"source {name}: input not found: {location} (no file, no prefix)")
    files = []
    for uri in uris:
        info = stat(uri)
        if info is None:
            raise BadInput(f"source {name}: input not found: {uri}")
        if info.size == 0:
            raise BadInput(f"source {name}: file {uri} is empty")
        fmt, compression = detect_format(uri, source.format)
        files.append(SourceFile(uri=uri, size=info.size, format=fmt, compression=compression))
    formats = sorted({f.format for f in files})
    if len(formats) > 1:
        raise BadInput(f"source {name}: files of several formats ({', '.join(formats)}) match")
    _check_keys(name, source, files[0])
    return files


def _check_keys(name: str, source: Source, file: SourceFile) -> None:
    """The format-specific keys fit the format the files turned out to have."""
    misplaced = source.keys_not_for(file.format)
    if misplaced:
        scope = key_scope(misplaced[0])
        raise BadInput(f"source {name}: {scope} files; {file.uri} is {file.format}")


def glob_pattern(pattern: str) -> re.Pattern:
    """A glob as a regex: * and ? stay within a folder, ** crosses folders."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _glob(location: str) -> list[str]:
    first = min(location.index(c) for c in GLOB_CHARS if c in location)
    prefix = location[: location.rfind("/", 0, first)]
    matcher = glob_pattern(location)
    return [uri for uri in storage.list_uris(prefix) if matcher.match(uri)]


def _data_file(prefix: str, uri: str) -> bool:
    """Under a prefix, skip markers and hidden files (_SUCCESS, _metadata, .crc)."""
    relative = uri[len(prefix.rstrip("/")) + 1 :]
    return not any(part.startswith(("_", ".")) for part in relative.split("/"))


def _is_local_folder(uri: str) -> bool:
    path = storage.local_path(uri)
    return path is not None and path.is_dir()
