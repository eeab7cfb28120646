"""The HTML pages: runs, a run (and its live part), a comparison, the model registry.

Every fact comes from the functions the CLI prints (controller.views, cli_compare,
cli_models); storage reads block, so they run in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from mlbatch import registry, runs, storage
from mlbatch.controller import views
from mlbatch.controller.cli_compare import current_spec, family_rows, read_leaderboard, spec_diff
from mlbatch.controller.cli_models import model_rows, model_versions
from mlbatch.controller.cli_runs import LIVE_HEARTBEAT_S, open_run
from mlbatch.runs import RunLayout
from mlbatch.spec.evaluate import METRIC_MODES
from mlbatch.ui.app import ROOT, render

RUNS_SHOWN = 50  # runs on the first page of the list; "more" shows as many again
LIVE_POLL_S = 2  # how often a live run's page asks for its facts again
READERS = 8  # runs read at once from S3 for a list or a comparison


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", runs_page)
    router.add_get("/runs/{run_id}", run_page)
    router.add_get("/runs/{run_id}/live", run_live)
    router.add_get("/compare", compare_page)
    router.add_get("/models", models_page)
    router.add_get("/models/{name}", model_page)


def checked_run(root: str, run_id: str) -> RunLayout:
    """An existing run by id (never a path: the id's pattern has no `/` or `..`)."""
    if not runs.RUN_ID_PATTERN.match(run_id):
        raise web.HTTPNotFound(text=f"{run_id!r} is not a run id")
    return open_run(root, run_id)


def run_rows(root: str, limit: int) -> tuple[list[dict], bool]:
    """The newest `limit` runs as `mlbatch runs` lists them, and whether there are more."""
    ids = runs.list_run_ids(root, limit=limit + 1)
    rows = each_run(views.run_row, [RunLayout(root, i) for i in ids[:limit]], root=root)
    return rows, len(ids) > limit


def each_run(read: Callable, items: list, *, root: str) -> list:
    """read(run) for every run (an id or a layout), in order. On S3 each read is a round
    trip, so a few go at once; local files are read faster than threads would start."""
    if storage.local_path(root) is not None:
        return list(map(read, items))
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        return list(pool.map(read, items))


async def runs_page(request: web.Request) -> web.Response:
    try:
        limit = max(1, int(request.query.get("limit", RUNS_SHOWN)))
    except ValueError:
        raise web.HTTPBadRequest(text="limit must be a number") from None
    rows, more = await asyncio.to_thread(run_rows, request.app[ROOT], limit)
    return render(request, "runs.html", rows=rows, more=more, limit=limit)


def run_facts(root: str, run_id: str) -> dict:
    """What the run page shows: `mlbatch status`'s summary and stage table, and whether a
    controller is driving the run (then the page keeps asking)."""
    layout = checked_run(root, run_id)
    state = views.run_state(layout)
    summary = views.summary(layout, state)
    metrics = summary["metrics"]
    intervals = metrics.get("intervals") or {}
    shown = [(name, metrics[name], intervals.get(name)) for name in metric_names([metrics])]
    return {
        "run": summary, "state": state, "rows": views.stage_rows(state), "metrics": shown,
        "headline": views.headline(layout, metrics),
        "live": runs.controller_alive(state, stale_after_s=LIVE_HEARTBEAT_S),
        "poll_s": LIVE_POLL_S,
    }  # fmt: skip


def metric_names(metrics: list[dict]) -> list[str]:
    """The test metrics any of these runs has, in the order reports list them."""
    return [name for name in METRIC_MODES if any(isinstance(m.get(name), float) for m in metrics)]


async def run_page(request: web.Request) -> web.Response:
    root, run_id = request.app[ROOT], request.match_info["run_id"]

    def gather() -> dict:
        facts = run_facts(root, run_id)
        layout = RunLayout(root, run_id)
        spec_name = facts["state"].get("spec", runs.SPEC_NAME)
        return {**facts, "spec_name": spec_name, "spec": json.dumps(current_spec(layout), indent=2)}

    return render(request, "run.html", **await asyncio.to_thread(gather))


async def run_live(request: web.Request) -> web.Response:
    """The part of the run page that changes while it runs, for the page's poll."""
    root, run_id = request.app[ROOT], request.match_info["run_id"]
    return render(request, "run_live.html", **await asyncio.to_thread(run_facts, root, run_id))


def compare_facts(root: str, run_ids: list[str]) -> dict:
    """`mlbatch compare`'s leaderboards and spec differences, with each run's row."""
    layouts = each_run(lambda run_id: checked_run(root, run_id), run_ids, root=root)
    rows = each_run(views.run_row, layouts, root=root)
    boards = [b for b in each_run(read_leaderboard, layouts, root=root) if b is not None]
    return {
        "rows": rows,
        "metric_names": metric_names([row["metrics"] for row in rows]),
        "spec_diff": spec_diff(each_run(current_spec, layouts, root=root)),
        "boards": boards, "families": family_rows(boards),
        "without_board": [r["run_id"] for r in rows if r["run_id"] not in
                          {b["run_id"] for b in boards}],
    }  # fmt: skip


async def compare_page(request: web.Request) -> web.Response:
    run_ids = list(dict.fromkeys(request.query.getall("run", [])))
    if len(run_ids) < 2:
        raise web.HTTPBadRequest(text="pick two or more runs to compare (the runs list's boxes)")
    facts = await asyncio.to_thread(compare_facts, request.app[ROOT], run_ids)
    return render(request, "compare.html", **facts)


async def models_page(request: web.Request) -> web.Response:
    rows = await asyncio.to_thread(model_rows, request.app[ROOT])
    return render(request, "models.html", rows=rows)


def model_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not re.fullmatch(registry.NAME, name):
        raise web.HTTPNotFound(text=f"{name!r} is not a model name")
    return name


async def model_page(request: web.Request) -> web.Response:
    shown = await asyncio.to_thread(model_versions, request.app[ROOT], model_name(request))
    return render(request, "model.html", **shown)
