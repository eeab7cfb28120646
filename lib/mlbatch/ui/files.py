"""Stage outputs (reports, and the plots a report links to) and attempt logs, streamed
from storage with their content type.

Nothing is served by a path taken from the URL: a file must be an output the stage's
manifest committed, a log must belong to an attempt that run.json records.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import Iterator

from aiohttp import web

from mlbatch import storage
from mlbatch.controller import views
from mlbatch.manifest import load_manifest, output_uri
from mlbatch.spec.base import ALL_STAGES
from mlbatch.ui.app import ROOT
from mlbatch.ui.pages import checked_run

TEXT = "text/plain; charset=utf-8"


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/runs/{run_id}/{stage}/files/{path:.+}", output_file)
    router.add_get("/runs/{run_id}/{stage}/attempts/{attempt}/log", attempt_log)


def committed_output(root: str, run_id: str, stage: str, path: str) -> tuple[str, int]:
    """The URI and size of an output the stage's manifest lists, else 404."""
    layout = checked_run(root, run_id)
    _check_stage(stage)
    loaded = load_manifest(layout, stage)
    if loaded is None:
        raise web.HTTPNotFound(text=f"stage {stage} of run {run_id} has not committed")
    manifest = loaded[0]
    if path not in manifest.outputs:
        raise web.HTTPNotFound(text=f"stage {stage} of run {run_id} committed no {path!r}")
    return output_uri(layout, manifest, path), manifest.outputs[path].size


def log_chunks(root: str, run_id: str, stage: str, attempt: str) -> list[str]:
    """The uploaded chunks of an attempt's log, in order, else 404."""
    layout = checked_run(root, run_id)
    _check_stage(stage)
    record = views.run_state(layout)["stages"].get(stage) or {"attempts": []}
    if attempt not in {a["id"] for a in record["attempts"]}:
        raise web.HTTPNotFound(text=f"run {run_id} has no {stage} attempt {attempt!r}")
    chunks = [u for u in storage.list_uris(layout.log_prefix(stage, attempt)) if u.endswith(".log")]
    if not chunks:
        raise web.HTTPNotFound(text=f"no log for {stage} attempt {attempt} of run {run_id} yet")
    return chunks


async def output_file(request: web.Request) -> web.StreamResponse:
    info = request.match_info
    uri, size = await asyncio.to_thread(
        committed_output, request.app[ROOT], info["run_id"], info["stage"], info["path"]
    )
    kind = mimetypes.guess_type(info["path"])[0] or "application/octet-stream"
    if kind.startswith("text/"):
        kind += "; charset=utf-8"  # every report and JSON mlbatch writes is UTF-8
    return await _stream(request, [uri], kind, size=size)


async def attempt_log(request: web.Request) -> web.StreamResponse:
    info = request.match_info
    chunks = await asyncio.to_thread(
        log_chunks, request.app[ROOT], info["run_id"], info["stage"], info["attempt"]
    )
    return await _stream(request, chunks, TEXT)


async def _stream(
    request: web.Request, uris: list[str], kind: str, *, size: int | None = None
) -> web.StreamResponse:
    """The objects one after another, a chunk at a time; the first chunk is read before the
    headers go out, so an object that vanished is still a clean error."""
    pieces = _pieces(uris)
    first = await asyncio.to_thread(next, pieces, b"")
    response = web.StreamResponse(
        headers={"Content-Type": kind, "X-Content-Type-Options": "nosniff"}
    )
    if size is not None:
        response.content_length = size
    await response.prepare(request)
    chunk = first
    while chunk:
        await response.write(chunk)
        chunk = await asyncio.to_thread(next, pieces, b"")
    await response.write_eof()
    return response


def _pieces(uris: list[str]) -> Iterator[bytes]:
    for uri in uris:
        yield from storage.read_chunks(uri)


def _check_stage(stage: str) -> None:
    if stage not in ALL_STAGES:
        raise web.HTTPNotFound(text=f"{stage!r} is not a stage")
