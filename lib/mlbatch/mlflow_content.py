"""What a run folder holds, in MLflow's terms: the spec as parameters, each stage's numbers
as metrics, the Tune trials as nested runs with their per-round curves, and the outputs
worth keeping beside them as artifacts. Pure functions over mlbatch's own records; the
client calls live in mlflow_export.py."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

# MLflow's limits (mlflow.utils.validation): names, parameter values, one log_batch call.
NAME_LIMIT = 250
PARAM_VALUE_LIMIT = 6000
BATCH_PARAMS = 100
BATCH_METRICS = 1000
# Names MLflow accepts: word characters, . - : and spaces; "/" only where we put it (a
# column named "a/b" would otherwise open a metric group of its own in MLflow's UI).
NOT_IN_A_NAME = re.compile(r"[^\w.\- :]")
# The spec sections that are not parameters of the model: where to mirror the run
# (`tracking`), and how the run was executed (timeouts, resources: they change no result).
NOT_PARAMETERS = ("tracking", "execution", "description")
# Per stage, the outputs mirrored as artifacts under `<stage>/`: reports, plots and the
# small JSON records a person reads; never the data (tables, splits) nor the model, which
# goes with its registered version under `model/`.
STAGE_ARTIFACTS = {
    "etl": ("schema.json", "validation.json"),
    "explore": ("report.html", "summary.json", "advice.json", "notebook.ipynb"),
    "features": ("report.html", "feature_schema.json"),
    "train": ("report.html", "leaderboard.json", "trials.parquet", "model/model_info.json"),
    "evaluate": ("report.html", "metrics.json", "promotion.json", "plots/"),
    "predict": ("predictions.json",),
}


def name(text: str) -> str:
    """A parameter or metric name MLflow accepts."""
    return NOT_IN_A_NAME.sub("_", text)[:NAME_LIMIT]


def spec_params(document: dict) -> dict[str, str]:
    """The spec as parameters: one per leaf, named by its dotted path (`train.time_budget_s`);
    lists as JSON. Nothing secret is in a spec (credentials live in the environment)."""
    params: dict[str, str] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(f"{prefix}.{name(str(key))}" if prefix else name(str(key)), item)
        elif value is not None:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            params[prefix] = text[:PARAM_VALUE_LIMIT]

    walk("", {k: v for k, v in document.items() if k not in NOT_PARAMETERS})
    return params


def numbers(prefix: str, value) -> dict[str, float]:
    """Every finite number in a JSON document, named by its dotted path under prefix."""
    found: dict[str, float] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            found.update(numbers(f"{prefix}.{name(str(key))}" if prefix else name(str(key)), item))
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        found[prefix] = float(value)
    return found


def stage_metrics(
    stage: str, metrics: dict, profile: dict, evaluation: dict | None = None
) -> dict[str, float]:
    """A stage's manifest numbers and profile: `train.search_s`, `etl.profile.wall_s`; with
    evaluate's metrics.json, the test metrics by their own names (test_metrics)."""
    if evaluation is None:
        return {**numbers(stage, metrics), **numbers(f"{stage}.profile", profile)}
    tested = {*(evaluation.get("metrics") or {}), "intervals"}
    rest = {key: value for key, value in metrics.items() if key not in tested}
    return stage_metrics(stage, rest, profile) | test_metrics(evaluation)


def test_metrics(evaluation: dict) -> dict[str, float]:
    """evaluate's metrics.json as `test_<metric>` with its bootstrap interval's bounds
    (`test_<metric>_ci_low`, `test_<metric>_ci_high`)."""
    found = {f"test_{k}": v for k, v in numbers("", evaluation.get("metrics") or {}).items()}
    for metric, bounds in (evaluation.get("intervals") or {}).items():
        if bounds and len(bounds) == 2 and all(isinstance(b, int | float) for b in bounds):
            found[f"test_{name(metric)}_ci_low"] = float(bounds[0])
            found[f"test_{name(metric)}_ci_high"] = float(bounds[1])
    return {k: v for k, v in found.items() if math.isfinite(v)}


@dataclass(frozen=True)
class Trial:
    """One Tune trial as a nested MLflow run."""

    key: str  # `<family>/<trial id>`: unique in the run, the tag that finds it again
    run_name: str
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # by round


def trials(table: pa.Table) -> list[Trial]:
    """train's trials.parquet as nested runs: hyperparameters as parameters, the scores as
    metrics, the tuning metric round by round on validation and training rows as the
    history of `curve/valid_<metric>` and `curve/train_<metric>`."""
    ranking = json.loads((table.schema.metadata or {}).get(b"mlbatch", b"{}"))
    metric = ranking.get("metric", "metric")
    found = []
    for row in table.to_pylist():
        key = f"{row['family']}/{row['trial_id']}"
        config = json.loads(row.get("config") or "{}")
        params = {"family": row["family"]} | {
            name(k): (v if isinstance(v, str) else json.dumps(v))[:PARAM_VALUE_LIMIT]
            for k, v in config.items()
        }
        scores = {k: v for k, v in row.items() if k not in ("config", "trial_id")
                  and not k.startswith(("curve_", "param_"))}  # fmt: skip
        measured = numbers("", scores)
        if "valid" in measured:
            measured[f"valid_{name(metric)}"] = measured.pop("valid")
        if row.get("cv_scores"):
            measured[f"cv_{name(metric)}_std"] = float(_std(row["cv_scores"]))
        curves = {}
        for side in ("valid", "train"):
            values = row.get(f"curve_{side}") or []
            points = zip(row.get("curve_rounds") or [], values, strict=False)
            curve = [(int(r), float(v)) for r, v in points if v is not None and math.isfinite(v)]
            if curve:
                curves[f"curve/{side}_{name(metric)}"] = curve
        tags = {"mlbatch.trial": key, "mlbatch.status": str(row.get("status"))}
        tags |= {f"mlbatch.{k}": str(row[k]) for k in ("device", "node", "error") if row.get(k)}
        found.append(Trial(key=key, run_name=f"{row['family']}-{row['trial_id']}",
                           params=params, tags=tags, metrics=measured, curves=curves))  # fmt: skip
    return found


def _std(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def stage_artifacts(stage: str, outputs: list[str]) -> list[str]:
    """The committed outputs of a stage that are mirrored (paths in its attempt folder)."""
    wanted = STAGE_ARTIFACTS.get(stage, ())
    return [
        path for path in sorted(outputs)
        if path in wanted or any(w.endswith("/") and path.startswith(w) for w in wanted)
    ]  # fmt: skip


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]
