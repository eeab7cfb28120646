"""The model registry, kept in storage (no server): numbered versions and movable aliases.

    <storage>/models/<name>/versions/<n>/claim.json    allocates n (an exclusive create)
    <storage>/models/<name>/versions/<n>/version.json  the record, written last: a version
                                                       without it is incomplete and not listed
    <storage>/models/<name>/versions/<n>/...           model/, transformer.skops,
                                                       feature_schema.json, spec.json, metrics.json
    <storage>/models/<name>/aliases/<alias>.json       {version, moves, history}: a pointer

An alias moves by a conditional put on its pointer (If-None-Match for a new alias, If-Match
on the ETag of the pointer read), and its history of moves lives in the same object, so
racing promotions leave one consistent alias and history: each writer either wins on the
state it read, or reads again.
"""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlbatch import storage
from mlbatch.errors import BadInput, StorageError
from mlbatch.runs import RUN_ID_PATTERN

NAME = r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?"
ALIAS = r"[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?"
REFERENCE = re.compile(rf"^(?P<name>{NAME})(?:@(?P<alias>{ALIAS})|:(?P<version>[1-9]\d*))?$")
MOVE_TRIES = 50  # conditional puts lost in a row before giving up (each loss is another's win)


@dataclass(frozen=True)
class Reference:
    """NAME, NAME@ALIAS, NAME:N, or a run id."""

    text: str
    name: str | None = None
    alias: str | None = None
    version: int | None = None
    run_id: str | None = None


def parse_reference(text: str, *, bare_name: bool = False) -> Reference:
    """A model reference; BadInput naming the accepted forms. A bare NAME only if allowed."""
    if RUN_ID_PATTERN.match(text):
        return Reference(text, run_id=text)
    match = REFERENCE.match(text)
    if match and (bare_name or match["alias"] or match["version"]):
        version = int(match["version"]) if match["version"] else None
        return Reference(text, name=match["name"], alias=match["alias"], version=version)
    forms = "NAME@ALIAS, NAME:VERSION or a run id" + (", or NAME" if bare_name else "")
    raise BadInput(f"model reference {text!r} is not {forms}")


@dataclass(frozen=True)
class Artifact:
    """A file to register: a stored object (copied server-side) or a local file."""

    source: str | Path
    sha256: str
    size: int


@dataclass(frozen=True)
class Alias:
    name: str
    alias: str
    version: int
    moves: int
    history: list[dict]  # every move, oldest first: move, version, previous, at, by, reason
    token: str  # the pointer's storage version (ETag or mtime) when read

    def document(self) -> dict:
        return {"name": self.name, "alias": self.alias, "version": self.version,
                "moves": self.moves, "history": self.history}  # fmt: skip


def models_uri(storage_uri: str) -> str:
    return storage.join(storage_uri, "models")


def version_uri(storage_uri: str, name: str, version: int) -> str:
    return storage.join(models_uri(storage_uri), name, "versions", str(version))


def alias_uri(storage_uri: str, name: str, alias: str) -> str:
    return storage.join(models_uri(storage_uri), name, "aliases", f"{alias}.json")


def register(
    storage_uri: str, name: str, *, run_id: str, files: dict[str, Artifact], record: dict
) -> dict:
    """Register a run's model as the next version; the existing one if this run has one."""
    number = None
    while number is None:  # the next number nobody claimed: exactly one writer gets each
        claims = _claims(storage_uri, name)
        number = next((n for n, claim in claims.items() if claim.get("run_id") == run_id), None)
        if number is None:
            candidate = max(claims, default=0) + 1
            claim = {"name": name, "version": candidate, "run_id": run_id, "claimed": _now()}
            if storage.create_exclusive(_claim_uri(storage_uri, name, candidate), _json(claim)):
                number = candidate
    existing = _read_json(storage.join(version_uri(storage_uri, name, number), "version.json"))
    if existing is not None:
        return existing  # a retried evaluate: this run's version is complete already
    folder = version_uri(storage_uri, name, number)
    for path, artifact in files.items():
        target = storage.join(folder, path)
        if isinstance(artifact.source, Path):
            storage.upload_file(artifact.source, target)
        else:
            storage.copy(artifact.source, target)
    document = {
        **record, "name": name, "version": number, "run_id": run_id, "registered": _now(),
        "files": {path: {"sha256": a.sha256, "size": a.size} for path, a in files.items()},
    }  # fmt: skip
    storage.create_exclusive(storage.join(folder, "version.json"), _json(document))
    return version_record(storage_uri, name, number)


def version_record(storage_uri: str, name: str, version: int) -> dict:
    record = _read_json(storage.join(version_uri(storage_uri, name, version), "version.json"))
    if record is None:
        raise BadInput(f"model {name} has no version {version}")
    return record


def versions(storage_uri: str, name: str) -> list[dict]:
    """Every complete version's record, oldest first."""
    prefix = storage.join(models_uri(storage_uri), name, "versions")
    numbers = sorted(
        int(uri[len(prefix) + 1 :].split("/")[0])
        for uri in storage.list_uris(prefix)
        if uri.endswith("/version.json")
    )
    return [version_record(storage_uri, name, n) for n in numbers]


def model_names(storage_uri: str) -> list[str]:
    prefix = models_uri(storage_uri)
    return sorted({uri[len(prefix) + 1 :].split("/")[0] for uri in storage.list_uris(prefix)})


def read_alias(storage_uri: str, name: str, alias: str) -> Alias | None:
    uri = alias_uri(storage_uri, name, alias)
    # The version first, then the content: content newer than the version only makes the
    # next conditional put fail and read again; the other order could overwrite a move.
    info = storage.stat(uri)
    if info is None:
        return None
    try:
        document = json.loads(storage.read_bytes(uri))
    except FileNotFoundError:
        return None
    return Alias(
        name=name, alias=alias, version=document["version"], moves=document["moves"],
        history=document["history"], token=info.version,
    )  # fmt: skip


def aliases(storage_uri: str, name: str) -> dict[str, Alias]:
    prefix = storage.join(models_uri(storage_uri), name, "aliases")
    found = {}
    for uri in storage.list_uris(prefix):
        alias = uri.rsplit("/", 1)[1].removesuffix(".json")
        current = read_alias(storage_uri, name, alias)
        if current is not None:
            found[alias] = current
    return found


def move_alias(
    storage_uri: str, name: str, alias: str, *, version: int, expected: Alias | None,
    by: str, reason: str,
) -> Alias | None:  # fmt: skip
    """Point alias at version if it still is as `expected` (None: absent); None if it moved."""
    moves = expected.moves + 1 if expected else 1
    entry = {
        "move": moves, "version": version, "previous": expected.version if expected else None,
        "at": _now(), "by": by, "reason": reason,
    }  # fmt: skip
    history = [*(expected.history if expected else []), entry]
    document = {"name": name, "alias": alias, "version": version, "moves": moves,
                "history": history}  # fmt: skip
    uri = alias_uri(storage_uri, name, alias)
    if expected is None:
        won = storage.create_exclusive(uri, _json(document))
    else:
        won = storage.replace_if(uri, _json(document), version=expected.token)
    return read_alias(storage_uri, name, alias) if won else None


def set_alias(
    storage_uri: str, name: str, alias: str, *, version: int, by: str, reason: str
) -> Alias:
    """Point alias at version whatever it points at now (a person's decision)."""
    version_record(storage_uri, name, version)
    for _ in range(MOVE_TRIES):
        current = read_alias(storage_uri, name, alias)
        moved = move_alias(storage_uri, name, alias, version=version, expected=current,
                           by=by, reason=reason)  # fmt: skip
        if moved is not None:
            return moved
        time.sleep(random.uniform(0, 0.05))  # let the writer that won finish its turn
    raise StorageError(f"could not move {name}@{alias}: {MOVE_TRIES} concurrent moves won first")


def resolve(storage_uri: str, reference: Reference) -> dict:
    """The version record a NAME@ALIAS or NAME:N reference points at."""
    if reference.alias is not None:
        current = read_alias(storage_uri, reference.name, reference.alias)
        if current is None:
            raise BadInput(f"model {reference.name} has no alias {reference.alias!r}")
        return version_record(storage_uri, reference.name, current.version)
    if reference.version is None:
        raise BadInput(f"{reference.text!r} names no version: add @ALIAS or :N")
    return version_record(storage_uri, reference.name, reference.version)


def download_version(storage_uri: str, record: dict, into: Path) -> Path:
    """A registered version's files in a local folder, each checked against its hash."""
    folder = version_uri(storage_uri, record["name"], record["version"])
    for path, expected in record["files"].items():
        target = into / path
        storage.download_file(storage.join(folder, path), target)
        if storage.sha256_file(target) != expected["sha256"]:
            raise BadInput(f"{storage.join(folder, path)} does not match its registered hash")
    return into


def _claims(storage_uri: str, name: str) -> dict[int, dict]:
    prefix = storage.join(models_uri(storage_uri), name, "versions")
    claims = {}
    for uri in storage.list_uris(prefix):
        if uri.endswith("/claim.json"):
            claims[int(uri[len(prefix) + 1 :].split("/")[0])] = _read_json(uri) or {}
    return claims


def _claim_uri(storage_uri: str, name: str, version: int) -> str:
    return storage.join(version_uri(storage_uri, name, version), "claim.json")


def _read_json(uri: str) -> dict | None:
    try:
        return json.loads(storage.read_bytes(uri))
    except FileNotFoundError:
        return None


def _json(document: dict) -> bytes:
    return json.dumps(document, indent=2, default=str).encode()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
