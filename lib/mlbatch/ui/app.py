"""The web app: routes, templates, error pages, and the server `mlbatch ui` starts.

aiohttp and Jinja2 were both pinned already (the kubernetes client needs aiohttp, Dask's
distributed Jinja2): a well-kept server with streaming responses and a test client,
autoescaped templates, and nothing new to install.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import jinja2
from aiohttp import web

from mlbatch.controller import views
from mlbatch.errors import BadInput, StorageError

HERE = Path(__file__).resolve().parent
ROOT = web.AppKey("root", str)  # the storage URI every page reads
TEMPLATES = web.AppKey("templates", jinja2.Environment)
# Pages, fragments and JSON: scripts and styles only from /static, images also inline.
PAGE_POLICY = "default-src 'self'; img-src 'self' data:; object-src 'none'"


def create_app(storage_uri: str, *, allowed_hosts: set[str] | None = None) -> web.Application:
    """The app over one storage root. `allowed_hosts`: the Host header values it answers
    (None: any), which keeps other web sites out of a loopback server (DNS rebinding)."""
    from mlbatch.ui import api, files, pages

    app = web.Application(middlewares=[_host_check(allowed_hosts), _error_pages])
    app[ROOT] = storage_uri
    app[TEMPLATES] = _templates()
    pages.add_routes(app.router)
    files.add_routes(app.router)
    api.add_routes(app.router)
    app.router.add_static("/static/", HERE / "static")
    return app


def render(request: web.Request, template: str, *, status: int = 200, **context) -> web.Response:
    text = request.app[TEMPLATES].get_template(template).render(root=request.app[ROOT], **context)
    response = web.Response(text=text, status=status, content_type="text/html")
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    return response


def _templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the page, not shows blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        seconds=views.seconds,
        megabytes=views.megabytes,
        metric=lambda value: f"{value:.4f}" if isinstance(value, float) else value,
        when=_when,
        duration=_duration,
    )
    return environment


def _when(moment: float | str | None) -> str:
    """A time stamp (epoch seconds, as run.json keeps them, or ISO 8601 with a zone, as the
    registry does) in the server's local time."""
    if not moment:
        return ""
    if isinstance(moment, str):
        return datetime.fromisoformat(moment).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M:%S")


def _duration(value: float | None) -> str:
    """A run's wall time for people: `42.0s`, `4m 12s`, `1h 03m`."""
    if value is None:
        return ""
    if value < 60:
        return views.seconds(value)
    minutes, rest = divmod(round(value), 60)
    return f"{minutes}m {rest:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def _host_check(allowed: set[str] | None):
    @web.middleware
    async def check(request: web.Request, handler):
        if allowed is not None and request.host.rsplit(":", 1)[0].strip("[]") not in allowed:
            raise web.HTTPForbidden(text=f"mlbatch ui does not answer for host {request.host!r}")
        return await handler(request)

    return check


@web.middleware
async def _error_pages(request: web.Request, handler):
    """Known failures as a page (or JSON under /api/) that says what was not found."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        status, message = error.status, error.text or error.reason
    except BadInput as error:  # no such run, stage, attempt, model or version
        status, message = 404, str(error)
    except FileNotFoundError as error:  # listed a moment ago, deleted since (mlbatch gc)
        status, message = 404, f"{error} is gone"
    except StorageError as error:
        status, message = 502, str(error)
    if request.path.startswith("/api/"):
        return web.json_response({"error": message}, status=status)
    return render(request, "error.html", status=status, status_code=status, message=message)


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(storage_uri: str, *, host: str, port: int, on_ready: Callable[[str], None]) -> None:
    """Serve until interrupted; `on_ready` gets the URL once the port is bound (port 0: a
    free one)."""
    hosts = {"localhost", "127.0.0.1", "::1", host.strip("[]")} if loopback(host) else None
    asyncio.run(_serve(create_app(storage_uri, allowed_hosts=hosts), host, port, on_ready))


async def _serve(app: web.Application, host: str, port: int, on_ready) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        on_ready(f"http://{shown}:{bound}/")
        await asyncio.Event().wait()  # until Ctrl-C or SIGTERM cancels it
    finally:
        await runner.cleanup()
