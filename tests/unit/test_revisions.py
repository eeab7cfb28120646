"""Spec edits on resume: what may change, and how the revision is kept."""

from __future__ import annotations

import pytest

from mlbatch import runs
from mlbatch.controller import revisions
from mlbatch.errors import BadInput
from mlbatch.runs import RunLayout
from mlbatch.spec import validate_spec

SPEC = {"name": "edit", "target": "y", "etl": {"sources": {"d": {"uri": "d.csv"}}}}


@pytest.fixture
def layout(file_storage) -> RunLayout:
    layout = RunLayout(file_storage, runs.new_run_id())
    runs.write_spec(layout, validate_spec(SPEC).model_dump(mode="json"))
    runs.write_state(layout, {"state": "failed"})
    return layout


def test_no_edit_keeps_the_current_spec(layout):
    revision = revisions.revise(layout, validate_spec(SPEC))
    assert (revision.name, revision.edited) == ("spec.json", False)
    assert revisions.revise(layout, None).name == "spec.json"


def test_each_edit_is_a_new_immutable_revision(layout):
    first = revisions.revise(layout, validate_spec(SPEC, ["train.seed=7"]))
    assert (first.name, first.changed) == ("spec.1.json", ["train"])
    runs.write_state(layout, {"state": "failed", "spec": first.name})
    second = revisions.revise(layout, validate_spec(SPEC, ["train.seed=7", "explore.leak_auc=0.9"]))
    assert (second.name, second.changed) == ("spec.2.json", ["explore"])
    assert runs.read_spec(layout, "spec.1.json")["train"]["seed"] == 7
    assert runs.read_spec(layout)["train"]["seed"] == 0


@pytest.mark.parametrize(
    ("override", "message"),
    [("name=other", "renames the spec"), ("predict.model=m@production", "which stages")],
)
def test_edits_that_change_the_run_itself_are_refused(layout, override, message):
    with pytest.raises(BadInput, match=message):
        revisions.revise(layout, validate_spec(SPEC, [override]))


def test_only_spec_files_of_the_run_are_read(layout):
    for name in ("../spec.json", "run.json", "spec.0.json", "spec.x.json"):
        with pytest.raises(BadInput, match="is not a spec of a run"):
            runs.read_spec(layout, name)
