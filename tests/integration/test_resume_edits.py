"""A resume may edit the spec of stages that have not committed, and records it; an edit
to a committed stage is refused, since later stages would mix two configs."""

from __future__ import annotations

import pytest
from pipeline_checks import check_run, mlbatch, run_json
from small_tables import QUICK, cancer_csv

from mlbatch import cache, runs
from mlbatch.manifest import config_hash, load_manifest
from mlbatch.runs import RunLayout
from mlbatch.spec import PipelineSpec

pytestmark = pytest.mark.slow


def test_a_resume_edits_what_has_not_committed(tmp_path, file_storage):
    data = cancer_csv(tmp_path)
    # One second and no retry for train: it times out, and the run fails there.
    first = mlbatch("run", "--data", str(data), "--target", "target", "--storage", file_storage,
                    "-o", "json", *QUICK, "--set", "execution.retries=0",
                    "--set", "execution.stages.train.timeout_s=1")  # fmt: skip
    summary = run_json(first)
    assert first.returncode != 0 and summary["state"] == "failed", first.stderr
    assert summary["stages"]["train"]["reason"].startswith("timed out")
    run_id, layout = summary["run_id"], RunLayout(file_storage, summary["run_id"])
    original = runs.read_spec(layout)

    refused = mlbatch("resume", run_id, "--storage", file_storage, "--set", "features.split.seed=3")
    assert refused.returncode == 2
    # explore reads the split too: its target checks look at the training rows only.
    assert "the edit changes explore, features, which already committed" in refused.stderr
    assert runs.current_spec_name(layout) == "spec.json"  # nothing written

    resumed = mlbatch("resume", run_id, "--storage", file_storage, "-o", "json",
                      "--set", "execution.stages.train.timeout_s=600",
                      "--set", "train.seed=7")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    check_run(file_storage, run_id)
    state = runs.read_state(layout)
    assert state["spec"] == "spec.1.json" and state["state"] == "succeeded"
    last = state["resumes"][-1]
    assert last["spec"] == "spec.1.json" and last["changed"] == ["train"]
    assert set(last["code_versions"]) == {"train", "evaluate"}
    assert runs.read_spec(layout) == original  # spec.json is never rewritten
    revised = PipelineSpec.model_validate(runs.read_spec(layout, "spec.1.json"))
    assert revised.train.seed == 7
    # train ran with the revision: its manifest's config is the revised one.
    train = load_manifest(layout, "train")[0]
    assert train.config_hash == config_hash(cache.stage_config(revised, "train"))

    # A plain resume of the finished run keeps the revision and changes nothing.
    again = mlbatch("resume", run_id, "--storage", file_storage, "-o", "json")
    assert again.returncode == 0 and runs.read_state(layout)["spec"] == "spec.1.json"
