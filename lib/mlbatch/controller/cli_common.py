"""What every `mlbatch` command shares: the app, consoles, common options."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console

from mlbatch import storage

DEFAULT_STORAGE = "mlbatch-data"  # under the working directory: the embedded default

app = typer.Typer(
    help="mlbatch: batch ML pipelines (etl, explore, features, train, evaluate) "
    "that run the same on a laptop and on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
errors = Console(stderr=True)


class Output(StrEnum):
    table = "table"
    json = "json"


StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar="MLBATCH_STORAGE",
        help=f"Storage root: a path or file:// URI (default ./{DEFAULT_STORAGE}) "
        "or s3://bucket\\[/prefix].",
        show_default=False,
    ),
]
OutputOption = Annotated[Output, typer.Option("--output", "-o", help="table or json")]


def storage_root(option: str | None) -> str:
    return storage.resolve_uri(option or DEFAULT_STORAGE)


def print_error(message: str) -> None:
    for line in message.splitlines():
        errors.print(f"error: {line}", highlight=False, markup=False, soft_wrap=True)
