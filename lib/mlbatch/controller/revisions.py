"""Editing a run's spec on resume (`mlbatch resume RUN --set k=v` or `--spec FILE`).

Only stages that have not committed may change: a committed stage's outputs were made
with the old config, and the stages after it would mix the two. spec.json is never
rewritten: an edit becomes a new immutable revision `spec.<n>.json` beside it, which
run.json names (`spec`) and records in the resume's entry; the controller hands its name
to every later attempt in MLBATCH_SPEC, so each attempt reads the spec it was launched
with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlbatch import cache, runs
from mlbatch.controller import planner
from mlbatch.errors import BadInput
from mlbatch.manifest import load_manifest
from mlbatch.runs import RunLayout
from mlbatch.spec import PipelineSpec


@dataclass(frozen=True)
class Revision:
    name: str  # spec.json or spec.<n>.json
    spec: PipelineSpec
    changed: list[str] = field(default_factory=list)  # stages whose config an edit changed
    edited: bool = False


def current(layout: RunLayout) -> Revision:
    name = runs.current_spec_name(layout)
    return Revision(name, PipelineSpec.model_validate(runs.read_spec(layout, name)))


def revise(layout: RunLayout, edited: PipelineSpec | None) -> Revision:
    """The spec a resume runs with: the current one, or an edit, checked and written."""
    now = current(layout)
    if edited is None or edited.model_dump(mode="json") == now.spec.model_dump(mode="json"):
        return now
    if edited.name != now.spec.name:
        raise BadInput(f"resume: the edit renames the spec ({now.spec.name} -> {edited.name})")
    stages = planner.stages_for(now.spec)
    if planner.stages_for(edited) != stages:
        raise BadInput("resume: the edit changes which stages the run has; start a new run")
    changed = [
        s for s in stages if cache.stage_config(edited, s) != cache.stage_config(now.spec, s)
    ]
    committed = [s for s in changed if load_manifest(layout, s) is not None]
    if committed:
        raise BadInput(
            f"resume: the edit changes {', '.join(committed)}, which already committed; "
            "start a new run instead (its unchanged stages come from the cache)"
        )
    name = runs.write_revision(layout, edited.model_dump(mode="json"))
    return Revision(name, edited, changed, edited=True)
