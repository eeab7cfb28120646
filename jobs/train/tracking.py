"""The search's record: trials.parquet (every trial's hyperparameters, curve and scores)
and leaderboard.json (each family's best trial, best first)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlbatch_jobs.train.search import SearchResult

PARAM_PREFIX = "param_"  # one column per hyperparameter: param_max_depth, ...
LIST_COLUMNS = ("cv_scores", "curve_rounds", "curve_train", "curve_valid")
# Data-parallel trials: each worker's node and its shard's train rows, by rank.
WORKER_COLUMNS = {"worker_nodes": pa.string(), "worker_rows": pa.int64()}


def write_trials(path: Path, result: SearchResult) -> None:
    """One row per trial; hyperparameters as columns (numbers as float64, else strings)."""
    rows = [_row(trial) for trial in result.trials]
    names = sorted({name for trial in result.trials for name in trial["config"]})
    columns: dict[str, pa.Array] = {}
    for key in rows[0]:
        columns[key] = _column(key, [row[key] for row in rows])
    for name in names:
        values = [trial["config"].get(name) for trial in result.trials]
        columns[PARAM_PREFIX + name] = _column(name, values)
    table = pa.table(columns)
    metadata = {"metric": result.metric.name, "mode": result.metric.mode}
    table = table.replace_schema_metadata({"mlbatch": json.dumps(metadata)})
    pq.write_table(table, path)


def _row(trial: dict) -> dict:
    return {key: value for key, value in trial.items() if key != "config"} | {
        "config": json.dumps(trial["config"], default=_plain, sort_keys=True)
    }


def _column(key: str, values: list) -> pa.Array:
    if key in WORKER_COLUMNS:
        item = WORKER_COLUMNS[key]
        return pa.array([None if v is None else list(v) for v in values], type=pa.list_(item))
    if key in LIST_COLUMNS:
        item = pa.int64() if key == "curve_rounds" else pa.float64()
        return pa.array([None if v is None else list(v) for v in values], type=pa.list_(item))
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                       for v in present):  # fmt: skip
        return pa.array([None if v is None else float(v) for v in values], type=pa.float64())
    return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def leaderboard_document(result: SearchResult, tests: dict[str, float], selection: str) -> dict:
    """leaderboard.json: per family its best trial's scores; test scores are for reading
    only (selection never sees them)."""
    name = result.metric.name
    families = []
    for row in result.leaderboard:
        scores = row.get("cv_scores")
        families.append({
            "family": row["family"], "trial_id": row["trial_id"], name: row[name],
            "valid": row["valid"],
            "cv": {"mean": float(np.mean(scores)), "std": float(np.std(scores)),
                   "folds": len(scores)} if scores else None,
            "test": tests.get(row["family"]),
            "config": row["config"], "rounds": row["rounds"],
            "best_iteration": row["best_iteration"], "trials": row["trials"],
            "completed": row["completed"], "early_stopped": row["early_stopped"],
            "seconds": row["seconds"], "startup_s": result.startup_s.get(row["family"]),
        })  # fmt: skip
    return {
        "metric": name, "mode": result.metric.mode, "selection": selection,
        "best": families[0]["family"], "families": families,
    }  # fmt: skip


def final_document(final, scale: dict, metric, *, test: float) -> dict:
    """What train saved, for leaderboard.json and the report: the model (a family or an
    ensemble with its members and weights), the ensemble's selection, the refit, the
    target's scale and the threshold, and its test score (for reading only)."""
    members = [{
        "family": c.trial["family"], "trial_id": c.trial["trial_id"], "weight": round(w, 6),
        metric.name: c.trial.get(metric.name), "valid": c.trial.get("valid"),
    } for w, c in final.members]  # fmt: skip
    return {
        "model": "ensemble" if final.is_ensemble else members[0]["family"],
        "members": members, "ensemble_selection": final.selection,
        "finalists": final.finalists,
        "refit": final.refit, "refit_skipped": final.refit_skipped,
        "target_transform": scale, "threshold": final.threshold, "test": test,
    }  # fmt: skip


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, default=_plain) + "\n")


def _plain(value):
    """numpy scalars (Optuna and Tune hand some back) as Python numbers."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
