"""`mlbatch compare RUN [RUN...]`: the train stages' leaderboards side by side, and where
the runs' specs differ."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from mlbatch import runs, storage
from mlbatch.controller.cli_common import Output, OutputOption, StorageOption, console
from mlbatch.controller.cli_runs import open_run
from mlbatch.errors import BadInput
from mlbatch.manifest import load_manifest, output_uri
from mlbatch.runs import RunLayout


def compare(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids (see `mlbatch runs`).")],
    storage_option: StorageOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Each run's best trial per model family (tuning metric, CV and test scores), and the
    spec values that differ between the runs."""
    layouts = [open_run(storage_option, run_id) for run_id in run_ids]
    boards = [leaderboard(layout) for layout in layouts]
    differences = spec_diff([current_spec(layout) for layout in layouts])
    if output == Output.json:
        sys.stdout.write(json.dumps({"runs": boards, "spec_diff": differences}, indent=2) + "\n")
        return
    console.print(comparison_table(boards))
    if differences:
        console.print(spec_diff_table(differences, run_ids))


def leaderboard(layout: RunLayout) -> dict:
    """A run's leaderboard.json with its run id; BadInput if train has not committed."""
    board = read_leaderboard(layout)
    if board is None:
        raise BadInput(f"run {layout.run_id} has no committed train stage: nothing to compare")
    return board


def read_leaderboard(layout: RunLayout) -> dict | None:
    """A run's leaderboard.json with its run id; None if train has not committed."""
    loaded = load_manifest(layout, "train")
    if loaded is None:
        return None
    manifest, _ = loaded
    document = json.loads(storage.read_bytes(output_uri(layout, manifest, "leaderboard.json")))
    return {"run_id": layout.run_id, **document}


def current_spec(layout: RunLayout) -> dict:
    """The spec the run runs with: spec.json, or the revision a resume wrote."""
    return runs.read_spec(layout, runs.current_spec_name(layout))


def spec_diff(specs: list[dict]) -> list[dict]:
    """The spec values that are not the same in every run, by dotted key (lists as one value):
    `[{"key": "train.time_budget_s", "values": [240, 60]}]`; a key a spec lacks is None."""
    flat = [dict(_flatten(spec)) for spec in specs]
    keys = list(dict.fromkeys(key for values in flat for key in values))
    rows = [{"key": key, "values": [values.get(key) for values in flat]} for key in keys]
    return [row for row in rows if any(v != row["values"][0] for v in row["values"][1:])]


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def family_rows(boards: list[dict]) -> list[tuple[str, list[dict | None]]]:
    """Each family any run tried, with every run's best trial of it (None: not tried)."""
    families = list(dict.fromkeys(e["family"] for b in boards for e in b["families"]))
    return [
        (family, [next((e for e in b["families"] if e["family"] == family), None) for b in boards])
        for family in families
    ]


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
    for family, entries in family_rows(boards):
        pairs = zip(entries, boards, strict=True)
        table.add_row(family, *(_cell(entry, board) if entry else "" for entry, board in pairs))
    return table


def spec_diff_table(differences: list[dict], run_ids: list[str]):
    from rich.table import Table

    table = Table(title="spec values that differ", title_justify="left")
    for column in ("key", *run_ids):
        table.add_column(column)
    for row in differences:
        table.add_row(row["key"], *(json.dumps(v) for v in row["values"]))
    return table


def _cell(entry: dict, board: dict) -> str:
    best = " *" if board.get("best") == entry["family"] else ""
    test = entry.get("test")
    shown = f"{entry[board['metric']]:.4f}" + (f" / {test:.4f}" if test is not None else "")
    return shown + best


def register(app: typer.Typer) -> None:
    app.command()(compare)
