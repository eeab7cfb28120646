"""Registration and promotion: register the evaluated model as a new version, then move the
alias to it when the rule says so.

Rule `better` compares on one metric, on THIS run's raw test rows: the alias's current
model (the champion) scores them through its own transformer and model. Only models of the
same task, target, classes and metric compare; otherwise the decision is "not comparable"
and nothing moves. The alias moves by a conditional put on the state that was compared, so
when another run promotes in between, the comparison is made again with the new champion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlbatch import registry, scoring
from mlbatch.errors import StorageError
from mlbatch.spec.evaluate import METRIC_MODES
from mlbatch_jobs.evaluate.metrics import compute_metrics


@dataclass(frozen=True)
class Candidate:
    """The model this run evaluated, as the promotion sees it."""

    task: str
    target: str
    classes: list | None
    metric: str  # the metric compared
    score: float | None  # its test value
    raw_test: pd.DataFrame  # the raw test rows, aligned with y
    y: np.ndarray  # the encoded test target

    def better_than(self, champion: float) -> bool:
        if self.score is None:
            return False
        return (
            self.score > champion if METRIC_MODES[self.metric] == "max" else self.score < champion
        )


def promote(
    storage_uri: str, name: str, *, alias: str, rule: str, version: int, candidate: Candidate,
    run_id: str, work_dir: Path,
) -> dict:  # fmt: skip
    """Move alias to version when the rule says so; the decision, both scores and why."""
    decision = {
        "alias": alias, "rule": rule, "metric": candidate.metric, "candidate": candidate.score,
        "champion_version": None, "champion": None,
    }  # fmt: skip
    if rule == "never":
        return {**decision, "decision": "not promoted", "reason": "the promotion rule is never"}
    scored: dict[int, tuple[float | None, str]] = {}  # champion version -> score, why not
    for _ in range(registry.MOVE_TRIES):
        current = registry.read_alias(storage_uri, name, alias)
        if current is not None and current.version == version:  # a retried evaluate
            return {**decision, "decision": "promoted", "reason": "already promoted"}
        reason = f"first model for {name}@{alias}"
        if current is not None:
            if current.version not in scored:
                record = registry.version_record(storage_uri, name, current.version)
                scored[current.version] = champion_score(
                    storage_uri, record, candidate, work_dir / f"champion-{current.version}"
                )  # fmt: skip
            score, problem = scored[current.version]
            decision.update(champion_version=current.version, champion=score)
            verdict = _verdict(rule, candidate, current.version, score, problem)
            if verdict is not None:
                return {**decision, **verdict}
            reason = f"{rule}: replaces version {current.version}"
        moved = registry.move_alias(
            storage_uri, name, alias, version=version, expected=current,
            by=f"run {run_id}", reason=reason,
        )  # fmt: skip
        if moved is not None:
            return {**decision, "decision": "promoted", "reason": reason}
    raise StorageError(f"could not move {name}@{alias}: other promotions kept winning")


def _verdict(
    rule: str, candidate: Candidate, champion_version: int, score: float | None, problem: str
) -> dict | None:
    """None to promote; otherwise the decision not to, with why."""
    if rule == "always":
        return None
    if problem:
        return {"decision": "not comparable", "reason": problem}
    if candidate.better_than(score):
        return None
    why = (
        f"{candidate.metric} {_shown(candidate.score)} does not beat version "
        f"{champion_version}'s {_shown(score)} on this run's test rows"
    )
    return {"decision": "kept", "reason": why}


def champion_score(
    storage_uri: str, record: dict, candidate: Candidate, folder: Path
) -> tuple[float | None, str]:
    """The champion's metric on this run's raw test rows, or why it cannot be compared."""
    mismatches = [
        f"{what} {theirs!r} (this run: {ours!r})"
        for what, theirs, ours in (
            ("task", record.get("task"), candidate.task),
            ("target", record.get("target"), candidate.target),
            ("classes", record.get("classes"), candidate.classes),
            ("metric", (record.get("metric") or {}).get("name"), candidate.metric),
        )
        if theirs != ours
    ]
    if mismatches:
        return None, f"version {record['version']} differs in " + ", ".join(mismatches)
    registry.download_version(storage_uri, record, folder)
    scorer = scoring.load_scorer(folder)
    missing = [c for c in scorer.required_columns() if c not in candidate.raw_test.columns]
    if missing:
        return (
            None,
            f"this run's test rows lack columns version {record['version']} reads: {missing}",
        )
    scores = scorer.predict(candidate.raw_test)
    metrics = compute_metrics(
        candidate.task, candidate.y, scores, num_classes=len(candidate.classes or ()),
        threshold=scorer.threshold,
    )  # fmt: skip
    if candidate.metric not in metrics:
        return None, f"{candidate.metric} is undefined on this run's test rows"
    return metrics[candidate.metric], ""


def _shown(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"
