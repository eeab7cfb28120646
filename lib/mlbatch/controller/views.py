"""What the CLI shows: stage tables and run summaries, for people (Rich) and scripts (JSON)."""

from __future__ import annotations

import time

from rich.table import Table

from mlbatch import storage
from mlbatch.controller.cli_common import console, errors
from mlbatch.manifest import load_manifest
from mlbatch.notes import run_notes
from mlbatch.runs import RunLayout

STATE_STYLE = {
    "SUCCEEDED": "green", "RUNNING": "cyan", "PENDING": "dim", "FAILED": "red",
    "REJECTED": "yellow", "CANCELLED": "magenta", "SKIPPED": "dim",
}  # fmt: skip
REPORTS = {stage: "report.html" for stage in ("explore", "features", "train", "evaluate")}


def stage_table(state: dict, *, title: str | None = None) -> Table:
    """One row per stage: state, attempts, elapsed or wall time, CPU, peak memory, reason."""
    table = Table(title=title or f"run {state['run_id']}", title_justify="left")
    for column in ("stage", "state", "attempts", "time", "cpu", "peak mem", "note"):
        table.add_column(
            column, justify="right" if column in ("time", "cpu", "peak mem") else "left"
        )
    for stage in state["stages"]:
        record = state["stages"][stage]
        attempts = record["attempts"]
        last = attempts[-1] if attempts else {}
        # A cached stage's profile is the run it came from: its cost here was a copy.
        profile = {} if record.get("cached_from") else last.get("profile") or {}
        if profile:
            elapsed = f"{profile['wall_s']:.1f}s"
        elif last.get("started") and not record.get("cached_from"):
            elapsed = f"{(last.get('ended') or time.time()) - last['started']:.1f}s"
        else:
            elapsed = ""
        style = STATE_STYLE.get(record["state"], "")
        table.add_row(
            stage,
            f"[{style}]{record['state'].lower()}[/]",
            str(len(attempts)) if attempts else "",
            elapsed,
            f"{profile['cpu_s']:.1f}s" if profile else "",
            f"{profile['peak_rss_mb']:.0f} MB" if profile else "",
            _note(record),
        )
    return table


def _note(record: dict) -> str:
    if record.get("cached_from"):
        return f"cached from {record['cached_from']}"
    return record.get("reason", "") if record["state"] != "SUCCEEDED" else ""


def summary(layout: RunLayout, state: dict) -> dict:
    """The run as one JSON-friendly dict: id, state, stages with profiles, metrics, reports."""
    stages, metrics, reports, per_stage = {}, {}, {}, {}
    for stage in state["stages"]:
        record = state["stages"][stage]
        entry = {"state": record["state"].lower(), "attempts": len(record["attempts"])}
        loaded = load_manifest(layout, stage)
        if loaded is not None:
            manifest = loaded[0]
            entry.update(attempt=manifest.attempt, profile=manifest.profile.model_dump())
            if manifest.cached_from:
                entry["cached_from"] = manifest.cached_from
            if stage == "evaluate":
                metrics = manifest.metrics
            per_stage[stage] = manifest.metrics
            if stage in REPORTS and REPORTS[stage] in manifest.outputs:
                attempt_uri = layout.attempt_uri(stage, manifest.attempt)
                reports[stage] = _display(storage.join(attempt_uri, REPORTS[stage]))
        if record.get("reason"):
            entry["reason"] = record["reason"]
        stages[stage] = entry
    return {
        "run_id": layout.run_id,
        "run_uri": layout.uri,
        "state": state.get("state", "unknown"),
        "exit_code": state.get("exit_code"),
        "message": state.get("message", ""),
        "wall_s": _wall_s(state),
        "stages": stages,
        "metrics": metrics,
        "reports": reports,
        "notes": run_notes(per_stage),  # what a person must not miss (suspected leaks, ...)
        **({"mlflow": state["mlflow"]} if state.get("mlflow") else {}),  # its MLflow mirror
    }


def _wall_s(state: dict) -> float | None:
    """Seconds from the run's creation to its end (to now while it goes on)."""
    if "created" not in state:
        return None
    return round(state.get("finished", time.time()) - state["created"], 1)


def _display(uri: str) -> str:
    """A local path where there is one (clickable in terminals), the URI otherwise."""
    path = storage.local_path(uri)
    return str(path) if path is not None else uri


def print_result(final: dict, log_tail: str) -> None:
    """The end of a run for a person: state, the error, test metrics, where the reports are."""
    state = final["state"]
    colour = {"succeeded": "green", "rejected": "yellow"}.get(state, "red")
    if log_tail:
        errors.print(f"--- last lines of the failed stage's log ---\n{log_tail}\n---",
                     highlight=False, markup=False, soft_wrap=True)  # fmt: skip
    console.print(f"run [bold]{final['run_id']}[/] [{colour}]{state}[/]", highlight=False)
    if final.get("message"):
        errors.print(f"error: {final['message']}", highlight=False, markup=False, soft_wrap=True)
    metrics = {k: v for k, v in final["metrics"].items() if isinstance(v, float)}
    if metrics:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        console.print(f"test metrics: {shown}", highlight=False)
    for note in final.get("notes", []):
        console.print(f"warning: {note}", style="yellow", highlight=False, markup=False,
                      soft_wrap=True)  # fmt: skip
    for stage, where in final["reports"].items():
        console.print(f"{stage} report: {where}", highlight=False, soft_wrap=True)
    mirror = final.get("mlflow") or {}
    if mirror.get("errors"):
        console.print(f"warning: the MLflow export failed {mirror['errors']} time(s): "
                      f"{mirror.get('last_error', '')}", style="yellow", highlight=False,
                      markup=False, soft_wrap=True)  # fmt: skip
    elif mirror.get("run_id"):
        where = mirror.get("url") or f"{mirror['uri']} run {mirror['run_id']}"
        console.print(f"mlflow run: {where}", highlight=False, soft_wrap=True)
