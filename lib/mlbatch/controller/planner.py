"""The pipeline DAG: which stage needs which, and which stages may start now."""

from __future__ import annotations

from mlbatch.spec import PipelineSpec
from mlbatch.spec.base import ALL_STAGES, SCORING_STAGES, STAGES

DEPENDENCIES: dict[str, tuple[str, ...]] = {
    "etl": (),
    "explore": ("etl",),
    "features": ("etl", "explore"),  # features applies explore's column advice
    "train": ("features",),
    "evaluate": ("features", "train"),
    "predict": ("etl",),
}
assert set(DEPENDENCIES) == set(ALL_STAGES)


def stages_for(spec: PipelineSpec) -> tuple[str, ...]:
    """The stages of a spec's pipeline: training, or batch scoring when it has `predict:`."""
    return SCORING_STAGES if getattr(spec, "predict", None) is not None else STAGES


def ready(done: set[str], started: set[str], stages: tuple[str, ...] = STAGES) -> list[str]:
    """Stages whose dependencies are all done and that have not started, in pipeline order."""
    return [
        stage
        for stage in stages
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
