"""JSON for scripts, the same documents as the CLI's `-o json`: `mlbatch runs`, `mlbatch
status` (plus `live`), `mlbatch models` and `mlbatch models show NAME`."""

from __future__ import annotations

import asyncio

from aiohttp import web

from mlbatch.controller.cli_models import model_rows, model_versions
from mlbatch.ui.app import ROOT
from mlbatch.ui.pages import RUNS_SHOWN, model_name, run_facts, run_rows


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/runs", runs)
    router.add_get("/api/runs/{run_id}", run)
    router.add_get("/api/models", models)
    router.add_get("/api/models/{name}", model)


async def runs(request: web.Request) -> web.Response:
    rows, _ = await asyncio.to_thread(run_rows, request.app[ROOT], RUNS_SHOWN)
    return web.json_response(rows)


async def run(request: web.Request) -> web.Response:
    facts = await asyncio.to_thread(run_facts, request.app[ROOT], request.match_info["run_id"])
    return web.json_response({**facts["run"], "live": facts["live"]})


async def models(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(model_rows, request.app[ROOT]))


async def model(request: web.Request) -> web.Response:
    name = model_name(request)
    return web.json_response(await asyncio.to_thread(model_versions, request.app[ROOT], name))
