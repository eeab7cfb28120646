"""`mlbatch` commands that look at and manage existing runs: status, logs, runs, cancel, gc."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer

from mlbatch import gc as garbage
from mlbatch import runs, storage
from mlbatch.controller import views
from mlbatch.controller.cli_common import (
    Output,
    OutputOption,
    StorageOption,
    console,
    storage_root,
)
from mlbatch.errors import BadInput
from mlbatch.runs import RunLayout
from mlbatch.spec.base import ALL_STAGES

RunIdArgument = Annotated[
    str, typer.Argument(help="Run id (see `mlbatch runs`), or the run's name (--run-name).")
]
FOLLOW_POLL_S = 2.0
LIVE_HEARTBEAT_S = 45  # a controller heartbeats every 10 s; older than this, it is gone


def open_run(storage_option: str | None, run_id: str) -> RunLayout:
    """An existing run's layout, by its id or its name (a controller Job's: `--run-name`);
    BadInput if there is no such run."""
    root = storage_root(storage_option)
    layout = RunLayout(root, runs.run_id_named(root, run_id) or runs.check_run_id(run_id))
    runs.read_spec(layout)
    return layout


def status(
    run_id: RunIdArgument, storage_option: StorageOption = None, output: OutputOption = Output.table
) -> None:
    """Stages, states, profiles and what was taken from the cache, for one run."""
    layout = open_run(storage_option, run_id)
    state = views.run_state(layout)
    final = views.summary(layout, state)
    if output == Output.json:
        sys.stdout.write(json.dumps(final, indent=2) + "\n")
        return
    console.print(views.stage_table(state, title=f"run {run_id}: {final['state']}"))
    views.print_result(final, "")


def logs_command(
    run_id: RunIdArgument,
    stage: Annotated[str, typer.Argument(help="Stage name.")],
    attempt: Annotated[str | None, typer.Option(help="Attempt id (default: the latest).")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the attempt ends.")
    ] = False,
    storage_option: StorageOption = None,
) -> None:
    """A stage's log, as the stage uploaded it: it outlives processes, containers and pods."""
    if stage not in ALL_STAGES:
        raise BadInput(f"unknown stage {stage!r}: one of {', '.join(ALL_STAGES)}")
    layout = open_run(storage_option, run_id)
    attempt = attempt or _latest_attempt(layout, stage)
    prefix = layout.log_prefix(stage, attempt)
    printed: set[str] = set()
    while True:
        finished = not follow or not _attempt_running(layout, stage, attempt)
        for uri in storage.list_uris(prefix):  # chunks are numbered, so sorted is in order
            if uri.endswith(".log") and uri not in printed:
                sys.stdout.buffer.write(storage.read_bytes(uri))
                sys.stdout.flush()
                printed.add(uri)
        if finished:  # read once more after the end was seen, so the last chunk is in
            break
        time.sleep(FOLLOW_POLL_S)
    if not printed:
        raise BadInput(f"no log for {stage} attempt {attempt} of run {run_id}")


def _latest_attempt(layout: RunLayout, stage: str) -> str:
    record = ((runs.read_state(layout) or {}).get("stages") or {}).get(stage) or {}
    if not record.get("attempts"):
        raise BadInput(f"stage {stage} of run {layout.run_id} has not started")
    return record["attempts"][-1]["id"]


def _attempt_running(layout: RunLayout, stage: str, attempt: str) -> bool:
    state = runs.read_state(layout) or {}
    if not runs.controller_alive(state, stale_after_s=LIVE_HEARTBEAT_S):
        return False
    for record in state["stages"][stage]["attempts"]:
        if record["id"] == attempt:
            return record.get("state") in ("LAUNCHING", "RUNNING")
    return False


def runs_command(
    storage_option: StorageOption = None,
    limit: Annotated[int, typer.Option(help="Show at most this many, newest first.")] = 20,
    output: OutputOption = Output.table,
) -> None:
    """Runs in the storage, newest first."""
    root = storage_root(storage_option)
    rows = [views.run_row(RunLayout(root, i)) for i in runs.list_run_ids(root, limit=limit)]
    if output == Output.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table(title=f"runs in {root}", title_justify="left")
    for column in ("run", "spec", "state", "time", "test metric"):
        table.add_column(column, justify="right" if column == "time" else "left")
    for row in rows:
        headline = row["headline"]
        shown = f"{headline['name']} {headline['value']:.4f}" if headline else ""
        table.add_row(row["run_id"], row["spec"], row["state"], views.seconds(row["wall_s"]), shown)
    console.print(table)


def cancel(
    run_id: RunIdArgument,
    storage_option: StorageOption = None,
    wait_s: Annotated[float, typer.Option(help="How long to wait for a live controller.")] = 60,
) -> None:
    """Stop a run's running attempts and mark it cancelled (`mlbatch resume` continues it)."""
    layout = open_run(storage_option, run_id)
    storage.create_exclusive(layout.cancel_uri, json.dumps({"requested": time.time()}).encode())
    state = runs.read_state(layout)
    if runs.controller_alive(state, stale_after_s=LIVE_HEARTBEAT_S):
        deadline = time.time() + wait_s
        while time.time() < deadline:
            if (runs.read_state(layout) or {}).get("state") != "running":
                console.print(f"run {run_id} cancelled by its controller")
                return
            time.sleep(1)
    # No live controller: stop what it left running ourselves.
    from mlbatch.controller.cli import _executor

    for record in (state or {}).get("stages", {}).values():
        for attempt in record["attempts"]:
            handle = attempt.get("handle")
            if handle and attempt.get("state") in ("LAUNCHING", "RUNNING"):
                executor = _executor(
                    handle["executor"], layout.storage_uri, namespace=None, context=None
                )
                executor.cancel(handle)
                attempt.update(state="CANCELLED", reason="cancelled by `mlbatch cancel`")
                record["state"] = "CANCELLED"
    if state:
        state.update(state="cancelled", message="cancelled")
        runs.write_state(layout, state)
    console.print(f"run {run_id} cancelled")


def gc(
    run_ids: Annotated[
        list[str] | None, typer.Argument(help="Runs to clean (default: all).")
    ] = None,
    storage_option: StorageOption = None,
    logs_too: Annotated[
        bool, typer.Option("--logs", help="Remove failed attempts' logs too.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, remove nothing.")] = False,
) -> None:
    """Remove outputs of attempts no manifest adopted (runs no controller is driving)."""
    result = garbage.collect(
        storage_root(storage_option), run_ids=run_ids, logs=logs_too, dry_run=dry_run
    )
    verb = "would remove" if dry_run else "removed"
    for uri in result.objects:
        console.print(f"{verb} {uri}", highlight=False, soft_wrap=True)
    for run_id in result.runs_skipped:
        console.print(f"skipped {run_id}: a controller is driving it", highlight=False)
    console.print(f"{verb} {len(result.objects)} objects in {result.runs_checked} runs")


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.command(name="logs")(logs_command)
    app.command(name="runs")(runs_command)
    app.command()(cancel)
    app.command()(gc)
