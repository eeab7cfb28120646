"""What the CLI shows: stage tables and run summaries, for people (Rich) and scripts (JSON)."""

from __future__ import annotations

import time

from rich.table import Table

from mlbatch import runs, storage
from mlbatch.controller.cli_common import console, errors
from mlbatch.manifest import load_manifest
from mlbatch.notes import run_notes
from mlbatch.runs import RunLayout
from mlbatch.spec.base import STAGES

STATE_STYLE = {
    "SUCCEEDED": "green", "RUNNING": "cyan", "PENDING": "dim", "FAILED": "red",
    "REJECTED": "yellow", "CANCELLED": "magenta", "SKIPPED": "dim",
}  # fmt: skip
REPORTS = {stage: "report.html" for stage in ("explore", "features", "train", "evaluate")}


def stage_rows(state: dict) -> list[dict]:
    """The facts of the stage table, one dict per stage: state, attempts (ids and states),
    time, CPU seconds and peak MB (None where there is nothing to show), cached_from, note."""
    rows = []
    for stage, record in state["stages"].items():
        attempts = record["attempts"]
        last = attempts[-1] if attempts else {}
        # A cached stage's profile is the run it came from: its cost here was a copy.
        profile = {} if record.get("cached_from") else last.get("profile") or {}
        if profile:
            elapsed = profile["wall_s"]
        elif last.get("started") and not record.get("cached_from"):
            elapsed = (last.get("ended") or time.time()) - last["started"]
        else:
            elapsed = None
        rows.append({
            "stage": stage, "state": record["state"],
            "attempts": [{"id": a["id"], "state": a.get("state", "")} for a in attempts],
            "time_s": elapsed, "cpu_s": profile.get("cpu_s"),
            "peak_rss_mb": profile.get("peak_rss_mb"),
            "cached_from": record.get("cached_from"), "note": _note(record),
        })  # fmt: skip
    return rows


def seconds(value: float | None) -> str:
    return f"{value:.1f}s" if value is not None else ""


def megabytes(value: float | None) -> str:
    return f"{value:.0f} MB" if value is not None else ""


def stage_table(state: dict, *, title: str | None = None) -> Table:
    """One row per stage: state, attempts, elapsed or wall time, CPU, peak memory, reason."""
    table = Table(title=title or f"run {state['run_id']}", title_justify="left")
    for column in ("stage", "state", "attempts", "time", "cpu", "peak mem", "note"):
        table.add_column(
            column, justify="right" if column in ("time", "cpu", "peak mem") else "left"
        )
    for row in stage_rows(state):
        style = STATE_STYLE.get(row["state"], "")
        table.add_row(
            row["stage"],
            f"[{style}]{row['state'].lower()}[/]",
            str(len(row["attempts"])) if row["attempts"] else "",
            seconds(row["time_s"]),
            seconds(row["cpu_s"]),
            megabytes(row["peak_rss_mb"]),
            row["note"],
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


def run_state(layout: RunLayout) -> dict:
    """The run's run.json; a run no controller has started yet is `created`, stages pending."""
    return runs.read_state(layout) or {
        "run_id": layout.run_id, "stages": empty_stages(), "state": "created",
    }  # fmt: skip


def empty_stages(stages: tuple[str, ...] = STAGES) -> dict:
    return {s: {"state": "PENDING", "attempts": []} for s in stages}


def run_row(layout: RunLayout) -> dict:
    """A run as the runs list shows it, from run.json and (once it ended with test metrics)
    evaluate's manifest: small reads, never a stage's outputs."""
    state = runs.read_state(layout) or {}
    ended = state.get("state") in ("succeeded", "rejected")
    loaded = load_manifest(layout, "evaluate") if ended else None
    metrics = loaded[0].metrics if loaded is not None else {}
    return {
        "run_id": layout.run_id,
        "spec": state.get("spec_name", ""),
        "state": state.get("state", "created"),
        "created": state.get("created"),
        "wall_s": _wall_s(state),
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, float)},
        "headline": headline(layout, metrics),
    }


def headline(layout: RunLayout, metrics: dict) -> dict | None:
    """The test metric a run is judged by: the one its promotion compared (the spec's
    registry metric, else the task's tuning metric); without a registry, train's tuning
    metric."""
    name = (metrics.get("promotion") or {}).get("metric")
    if name is None and metrics:
        loaded = load_manifest(layout, "train")
        name = loaded[0].metrics.get("tuning_metric") if loaded is not None else None
    value = metrics.get(name)
    return {"name": name, "value": value} if isinstance(value, float) else None


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
