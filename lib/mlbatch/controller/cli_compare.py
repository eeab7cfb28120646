"""`mlbatch compare RUN [RUN...]`: the train stages' leaderboards side by side."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from mlbatch import storage
from mlbatch.controller.cli_common import Output, OutputOption, StorageOption, console
from mlbatch.controller.cli_runs import open_run
from mlbatch.errors import BadInput
from mlbatch.manifest import load_manifest, output_uri


def compare(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids (see `mlbatch runs`).")],
    storage_option: StorageOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Each run's best trial per model family: tuning metric, CV and test scores."""
    boards = [leaderboard(storage_option, run_id) for run_id in run_ids]
    if output == Output.json:
        sys.stdout.write(json.dumps({"runs": boards}, indent=2) + "\n")
        return
    console.print(comparison_table(boards))


def leaderboard(storage_option: str | None, run_id: str) -> dict:
    """A run's leaderboard.json with its run id; BadInput if train has not committed."""
    layout = open_run(storage_option, run_id)
    loaded = load_manifest(layout, "train")
    if loaded is None:
        raise BadInput(f"run {run_id} has no committed train stage: nothing to compare")
    manifest, _ = loaded
    document = json.loads(storage.read_bytes(output_uri(layout, manifest, "leaderboard.json")))
    return {"run_id": run_id, **document}


def comparison_table(boards: list[dict]):
    """Families as rows, one column per run: `metric (selection) / test` of its best trial."""
    from rich.table import Table

    metrics = {board["metric"] for board in boards}
    title = f"best trial per family: {', '.join(sorted(metrics))} (selection score / test)"
    table = Table(title=title, title_justify="left")
    table.add_column("family")
    for board in boards:
        selection = board.get("selection", "valid")  # older leaderboards ranked on valid
        table.add_column(f"{board['run_id']}\n{board['metric']} ({selection})")
    families = list(dict.fromkeys(e["family"] for b in boards for e in b["families"]))
    for family in families:
        cells = []
        for board in boards:
            entry = next((e for e in board["families"] if e["family"] == family), None)
            cells.append(_cell(entry, board) if entry else "")
        table.add_row(family, *cells)
    return table


def _cell(entry: dict, board: dict) -> str:
    best = " *" if board.get("best") == entry["family"] else ""
    test = entry.get("test")
    shown = f"{entry[board['metric']]:.4f}" + (f" / {test:.4f}" if test is not None else "")
    return shown + best


def register(app: typer.Typer) -> None:
    app.command()(compare)
