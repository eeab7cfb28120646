"""`mlbatch gc`: remove the outputs and scratch of attempts no manifest adopted.

Only runs no controller is driving are touched (finished, or their heartbeat stale), so
an attempt still writing is never pulled from under it. Logs of failed attempts are kept
unless asked, since they explain the failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlbatch import runs, storage
from mlbatch.logs import LOG_DIR
from mlbatch.manifest import load_manifest
from mlbatch.runs import RunLayout
from mlbatch.spec.base import ALL_STAGES

STALE_AFTER_S = 600  # a running run whose controller wrote nothing for this long is dead


@dataclass
class Collected:
    runs_checked: int = 0
    runs_skipped: list[str] = field(default_factory=list)  # a live controller drives them
    objects: list[str] = field(default_factory=list)


def collect(
    storage_uri: str, *, run_ids: list[str] | None = None, logs: bool = False, dry_run: bool = False
) -> Collected:
    result = Collected()
    for run_id in run_ids or runs.list_run_ids(storage_uri):
        layout = RunLayout(storage_uri, runs.check_run_id(run_id))
        result.runs_checked += 1
        if runs.controller_alive(runs.read_state(layout), stale_after_s=STALE_AFTER_S):
            result.runs_skipped.append(run_id)
            continue
        for uri in garbage(layout, logs=logs):
            if not dry_run:
                storage.delete(uri)
            result.objects.append(uri)
    return result


def garbage(layout: RunLayout, *, logs: bool) -> list[str]:
    """Objects under the run's attempt and scratch folders that no manifest adopted."""
    found = []
    for stage in ALL_STAGES:
        loaded = load_manifest(layout, stage)
        adopted = loaded[0].attempt if loaded else None
        for folder in ("attempts", "scratch"):
            prefix = storage.join(layout.uri, stage, folder)
            for uri in storage.list_uris(prefix):
                attempt, _, path = uri[len(prefix) + 1 :].partition("/")
                if attempt == adopted:
                    continue
                if folder == "attempts" and path.startswith(f"{LOG_DIR}/") and not logs:
                    continue
                found.append(uri)
    return found
