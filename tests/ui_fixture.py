"""A storage laid out as runs leave it, for the ui's tests: written through mlbatch's own
storage, manifest and registry functions, so the same builder fills file:// and s3://.

Two finished runs of one spec (different budgets), a run a live controller is driving, a
run nobody started, and a registered model whose alias moved once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from mlbatch import registry, runs, storage
from mlbatch.manifest import Manifest, OutputFile, Profile, commit
from mlbatch.runs import RunLayout

PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
SPEC = {"name": "ui-demo", "target": "y", "etl": {"sources": {"table": {"uri": "table.csv"}}},
        "train": {"num_samples": 2, "time_budget_s": 20}}  # fmt: skip
MODEL = "ui-demo"


@dataclass(frozen=True)
class UiStorage:
    root: str
    older: str  # succeeded, model version 1, promoted first
    newer: str  # another budget, etl from older's cache, version 2, promoted over 1
    running: str  # a live controller (this process) is in train
    created: str  # spec.json only


def build_storage(root: str) -> UiStorage:
    older = _finished_run(root, minute=1, budget=20, roc_auc=0.81, version=1,
                          families={"xgboost": 0.80})  # fmt: skip
    newer = _finished_run(root, minute=2, budget=60, roc_auc=0.84, version=2,
                          families={"xgboost": 0.82, "lightgbm": 0.83},
                          etl_cached_from=older.run_id)  # fmt: skip
    _register(root, older, 0.81, reason="first model for ui-demo@production")
    _register(root, newer, 0.84, reason="roc_auc 0.8400 better than 0.8100")
    running = _running_run(root, minute=3)
    created = RunLayout(root, _run_id(4, "cccccc"))
    runs.write_spec(created, SPEC)
    return UiStorage(root, older.run_id, newer.run_id, running.run_id, created.run_id)


def _run_id(minute: int, suffix: str) -> str:
    return f"{datetime(2026, 1, 2, 3, minute, 0, tzinfo=UTC):%Y%m%d-%H%M%S}-{suffix}"


def _finished_run(
    root: str,
    *,
    minute: int,
    budget: int,
    roc_auc: float,
    version: int,
    families: dict,
    etl_cached_from: str | None = None,
) -> RunLayout:
    layout = RunLayout(root, _run_id(minute, f"{minute:06d}"))
    runs.write_spec(layout, {**SPEC, "train": {"num_samples": 2, "time_budget_s": budget}})
    best = max(families, key=families.get)
    board = {"metric": "roc_auc", "mode": "max", "selection": "valid", "best": best,
             "families": [{"family": f, "roc_auc": s, "valid": s, "cv": None, "test": s - 0.01}
                          for f, s in families.items()]}  # fmt: skip
    report = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>{stage} report</title>'
        '</head><body><h1>{stage}</h1><img alt="plot" src="plots/curve.png"></body></html>'
    )
    outputs = {
        "etl": {"table.parquet": b"not parquet, never read by the ui"},
        "explore": {"report.html": report.format(stage="explore").encode(),
                    "plots/curve.png": PNG_1X1},
        "features": {"feature_schema.json": b"{}"},
        "train": {"leaderboard.json": json.dumps(board).encode(),
                  "report.html": report.format(stage="train").encode(),
                  "plots/curve.png": PNG_1X1},
        "evaluate": {"report.html": report.format(stage="evaluate").encode(),
                     "plots/curve.png": PNG_1X1},
    }  # fmt: skip
    evaluate = {
        "roc_auc": roc_auc, "pr_auc": roc_auc - 0.2, "accuracy": 0.78,
        "intervals": {"roc_auc": [roc_auc - 0.01, roc_auc + 0.01]},
        "gates": [{"gate": "roc_auc >= 0.7", "metric": "roc_auc", "passed": True,
                   "value": roc_auc}],
        "promotion": {"registry": MODEL, "metric": "roc_auc", "decision": "promoted",
                      "alias": "production", "reason": "better", "version": version},
    }  # fmt: skip
    metrics = {"train": {"tuning_metric": "roc_auc"}, "evaluate": evaluate}
    start = time.time() - 600 + minute
    state = {"run_id": layout.run_id, "spec_name": SPEC["name"], "executor": "local",
             "state": "succeeded", "created": start, "finished": start + 100, "exit_code": 0,
             "stages": {}}  # fmt: skip
    for number, (stage, files) in enumerate(outputs.items()):
        attempt = f"1-{number:04d}"
        profile = Profile(
            wall_s=10.0 + number, cpu_s=5.0 + number, peak_rss_mb=100.0 * (number + 1)
        )
        cached = etl_cached_from if stage == "etl" else None
        _commit(layout, stage, attempt, files, metrics.get(stage, {}), profile, start + number,
                cached_from=cached)  # fmt: skip
        _log(layout, stage, attempt, [f"{stage} attempt {attempt}\n", f"{stage} committed\n"])
        record = {"id": attempt, "started": start + number, "ended": start + number + 1,
                  "state": "SUCCEEDED"}  # fmt: skip
        # As the runner records them: a cached stage has no profile of its own.
        record.update({"cached_from": cached} if cached else {"profile": profile.model_dump()})
        state["stages"][stage] = {"state": "SUCCEEDED", "attempts": [record]}
        if cached:
            state["stages"][stage]["cached_from"] = cached
    runs.write_state(layout, state)
    return layout


def _running_run(root: str, *, minute: int) -> RunLayout:
    """etl retried once then committed, train running: what run.json holds mid-run, with
    this process as the controller (alive, on this host, fresh heartbeat)."""
    layout = RunLayout(root, _run_id(minute, "bbbbbb"))
    runs.write_spec(layout, SPEC)
    start = time.time() - 30
    profile = Profile(wall_s=2.0, cpu_s=1.5, peak_rss_mb=300.0)
    _commit(layout, "etl", "2-0001", {"table.parquet": b"rows"}, {}, profile, start)
    _log(layout, "etl", "1-0001", ["etl attempt 1-0001\n", "Killed\n"])
    _log(layout, "etl", "2-0001", ["etl attempt 2-0001\n", "etl committed\n"])
    _log(layout, "train", "1-0002", ["train attempt 1-0002\n"])
    stages = {stage: {"state": "PENDING", "attempts": []} for stage in ("explore", "features",
                                                                         "evaluate")}  # fmt: skip
    stages["etl"] = {"state": "SUCCEEDED", "attempts": [
        {"id": "1-0001", "started": start, "ended": start + 1, "state": "FAILED",
         "exit_code": 137, "reason": "killed (out of memory?)"},
        {"id": "2-0001", "started": start + 2, "ended": start + 4, "state": "SUCCEEDED",
         "exit_code": 0, "profile": profile.model_dump()},
    ]}  # fmt: skip
    stages["train"] = {"state": "RUNNING", "attempts": [
        {"id": "1-0002", "started": start + 5, "state": "RUNNING"}]}  # fmt: skip
    runs.write_state(layout, {
        "run_id": layout.run_id, "spec_name": SPEC["name"], "executor": "local",
        "state": "running", "created": start, "controller": runs.controller_identity(),
        "stages": {s: stages[s] for s in ("etl", "explore", "features", "train", "evaluate")},
    })  # fmt: skip
    assert runs.controller_alive(runs.read_state(layout), stale_after_s=45), socket.gethostname()
    return layout


def _commit(layout, stage, attempt, files, metrics, profile, started, cached_from=None) -> None:
    folder = layout.attempt_uri(stage, attempt)
    outputs = {}
    for path, data in files.items():
        storage.write_bytes(storage.join(folder, path), data)
        outputs[path] = OutputFile(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    manifest = Manifest(
        run_id=layout.run_id, stage=stage, attempt=attempt, status="succeeded", exit_code=0,
        code_version="test", config_hash="test", outputs=outputs, metrics=metrics,
        profile=profile, started=started, finished=started + profile.wall_s,
        cached_from=cached_from,
    )  # fmt: skip
    assert commit(layout, manifest)


def _log(layout: RunLayout, stage: str, attempt: str, chunks: list[str]) -> None:
    for number, text in enumerate(chunks):
        storage.write_bytes(storage.join(layout.log_prefix(stage, attempt), f"{number:05d}.log"),
                            text.encode())  # fmt: skip


def _register(root: str, layout: RunLayout, roc_auc: float, *, reason: str) -> None:
    record = {"task": "binary", "target": "y", "model_family": "xgboost",
              "metric": {"name": "roc_auc", "mode": "max", "value": roc_auc},
              "metrics": {"roc_auc": roc_auc}}  # fmt: skip
    version = registry.register(root, MODEL, run_id=layout.run_id, files={}, record=record)
    registry.set_alias(root, MODEL, "production", version=version["version"],
                       by=f"run {layout.run_id}", reason=reason)  # fmt: skip
