"""The pipeline DAG: which stage needs which, and which stages may start now."""

from __future__ import annotations

from mlbatch.spec import STAGES

DEPENDENCIES: dict[str, tuple[str, ...]] = {
    "etl": (),
    "explore": ("etl",),
    "features": ("etl",),
    "train": ("features",),
    "evaluate": ("features", "train"),
}
assert set(DEPENDENCIES) == set(STAGES)


def ready(done: set[str], started: set[str]) -> list[str]:
    """Stages whose dependencies are all done and that have not started, in pipeline order."""
    return [
        stage
        for stage in STAGES
        if stage not in started and stage not in done and set(DEPENDENCIES[stage]) <= done
    ]


def downstream(stage: str) -> set[str]:
    """Every stage that depends on `stage`, directly or not."""
    found: set[str] = set()
    frontier = {stage}
    while frontier:
        frontier = {s for s, deps in DEPENDENCIES.items() if frontier & set(deps)} - found
        found |= frontier
    return found
