"""`mlbatch ui` for tests: the app on a free loopback port in a thread, or the CLI in its
own process; and GETs that send the path exactly as written (`..` and `%2f` included)."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from mlbatch.ui.app import create_app


@contextmanager
def serving(storage_uri: str, *, allowed_hosts: set[str] | None = None) -> Iterator[str]:
    """The app over a storage on 127.0.0.1 in a background thread: yields its base URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="ui-server", daemon=True)
    thread.start()
    runner = web.AppRunner(create_app(storage_uri, allowed_hosts=allowed_hosts), access_log=None)

    def call(coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=30)

    call(runner.setup())
    try:
        call(web.TCPSite(runner, "127.0.0.1", 0).start())
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        call(runner.cleanup())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@contextmanager
def ui_process(storage_uri: str, *options: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`mlbatch ui --port 0` as a user starts it: yields its URL (from the line it prints
    once listening) and the process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mlbatch.controller.cli", "ui", "--storage", storage_uri,
         "--port", "0", *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        found = re.search(r"(http://\S+?)/ ", line)
        assert found, f"no URL in {line!r}; stderr: {process.stderr.read() if not line else ''}"
        yield found.group(1), process
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self):
        return json.loads(self.body)


def get(base: str, path: str, *, headers: dict | None = None, method: str = "GET") -> Reply:
    """One request with the path sent as is (urllib and browsers would resolve `..`)."""
    where = urlsplit(base)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, headers, response.read())
    finally:
        connection.close()
