"""`mlbatch ui`: the read-only web app over a storage, on localhost by default."""

from __future__ import annotations

from typing import Annotated

import typer

from mlbatch.controller.cli_common import StorageOption, console, errors, storage_root
from mlbatch.errors import BadInput

DEFAULT_PORT = 8765


def ui(
    storage_option: StorageOption = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; anything but loopback exposes the runs.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: a free one).")] = DEFAULT_PORT,
) -> None:
    """A web page over the storage: runs (live while they go on), stage reports and logs,
    comparisons, the model registry. Read-only; Ctrl-C stops it."""
    try:  # aiohttp and Jinja2: only for the ui (the ui extra, in dev)
        from mlbatch.ui.app import loopback, serve
    except ImportError as error:
        raise BadInput(f"mlbatch ui needs the ui extra installed: {error}") from None

    root = storage_root(storage_option)
    if not loopback(host):
        errors.print(f"warning: listening on {host}: whoever reaches this address can read "
                     "every run, report, log and model in the storage (no login)",
                     style="yellow", highlight=False, markup=False)  # fmt: skip

    def ready(url: str) -> None:
        console.print(f"mlbatch ui on {url} (storage {root}); Ctrl-C stops it",
                      highlight=False, soft_wrap=True)  # fmt: skip

    try:
        serve(root, host=host, port=port, on_ready=ready)
    except KeyboardInterrupt:
        return  # the way to stop a server: not an error
    except OSError as error:  # the port is taken, the address is not this machine's
        raise BadInput(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def register(app: typer.Typer) -> None:
    app.command()(ui)
