"""`mlbatch mlflow-sync RUN`: mirror a past run in MLflow, or catch up one whose export
failed; safe to repeat (the export finds what it logged before)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from mlbatch import mlflow_tracking, runs
from mlbatch.controller import revisions
from mlbatch.controller.cli_common import Output, OutputOption, StorageOption, console
from mlbatch.controller.cli_runs import LIVE_HEARTBEAT_S, RunIdArgument, open_run
from mlbatch.errors import BadInput


def mlflow_sync(
    run_id: RunIdArgument,
    uri: Annotated[
        str | None,
        typer.Option(help="Tracking server (default: the spec's, then MLFLOW_TRACKING_URI)."),
    ] = None,
    storage_option: StorageOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Mirror a run in MLflow: its spec, stages, trials, reports and registered model."""
    layout = open_run(storage_option, run_id)
    state = runs.read_state(layout)
    if state is None:
        raise BadInput(f"run {run_id} has not started: nothing to mirror")
    if runs.controller_alive(state, stale_after_s=LIVE_HEARTBEAT_S):
        raise BadInput(f"run {run_id} is being driven by a live controller, which mirrors it")
    tracking = mlflow_tracking.for_run(layout, revisions.current(layout).spec, uri=uri)
    if tracking is None:
        raise BadInput("no MLflow server: give --uri, or set MLFLOW_TRACKING_URI")
    tracking.sync(state, final=True, wait_s=None)
    record = tracking.record()
    if output == Output.json:
        sys.stdout.write(json.dumps(record, indent=2) + "\n")
    elif not record["errors"]:
        where = record.get("url") or f"{record['uri']} run {record['run_id']}"
        console.print(f"run {layout.run_id} mirrored: {where}", highlight=False, soft_wrap=True)
    if record["errors"]:
        raise typer.Exit(1)  # the warning said why; a retry may well succeed


def register(app: typer.Typer) -> None:
    app.command(name="mlflow-sync")(mlflow_sync)
