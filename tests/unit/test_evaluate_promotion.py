"""Promotion: the champion scored on the challenger's raw test rows through its own
transformer and model; better, worse, not comparable; the rules; racing promotions."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from evaluate_fixture import evaluate_in_process, model_run

from mlbatch import registry, storage
from mlbatch_jobs.evaluate import promotion

WEAK = {"learning_rate": 0.01, "max_depth": 1}
STRONG = {"learning_rate": 0.3, "max_depth": 4}
QUICK_EVALUATION = {"bootstrap": 20, "permutation_repeats": 1}


def evaluated(root: str, task: str = "binary", *, seed: int, config: dict, rule: str = "better",
              rename: dict | None = None, name: str = "unit") -> dict:  # fmt: skip
    extra = {"evaluate": {**QUICK_EVALUATION, "registry": {"promote": rule}}}
    layout = model_run(root, task, seed=seed, config=config, family="xgboost", extra=extra,
                       rename=rename, name=name)  # fmt: skip
    return evaluate_in_process(layout).metrics


@pytest.fixture
def root(tmp_path) -> str:
    return storage.resolve_uri(str(tmp_path / "store"))


@pytest.mark.slow
def test_a_better_model_is_promoted_and_a_worse_one_kept(root):
    first = evaluated(root, seed=1, config=WEAK)["promotion"]
    assert (first["decision"], first["version"], first["champion_version"]) == ("promoted", 1, None)

    better = evaluated(root, seed=2, config=STRONG)
    decision = better["promotion"]
    assert (decision["decision"], decision["version"], decision["champion_version"]) == (
        "promoted", 2, 1,
    )  # fmt: skip
    assert decision["candidate"] == better["roc_auc"] > decision["champion"] > 0.5

    worse = evaluated(root, seed=3, config=WEAK)["promotion"]
    assert (worse["decision"], worse["version"], worse["champion_version"]) == ("kept", 3, 2)
    assert worse["champion"] > worse["candidate"]
    assert "does not beat version 2" in worse["reason"]

    alias = registry.read_alias(root, "unit", "production")
    assert alias.version == 2 and [h["version"] for h in alias.history] == [1, 2]
    assert [v["version"] for v in registry.versions(root, "unit")] == [1, 2, 3]


@pytest.mark.slow
def test_the_champion_scores_raw_rows_as_its_own_evaluation_did(root, tmp_path):
    own = evaluated(root, seed=4, config=STRONG)
    record = registry.version_record(root, "unit", 1)
    layout = model_run(root, "binary", seed=4, config=WEAK)  # the same rows, another model
    features = storage.local_path(layout.attempt_uri("features", "1-aaaa"))
    test = pd.read_parquet(features / "splits/test.parquet")
    raw = pd.read_parquet(features / "raw/test.parquet")
    candidate = promotion.Candidate(
        task="binary", target="y", classes=[False, True], metric="roc_auc", score=0.5,
        raw_test=raw, y=test["__target"].to_numpy(),
    )  # fmt: skip
    score, problem = promotion.champion_score(root, record, candidate, tmp_path / "champion")
    assert problem == "" and score == pytest.approx(own["roc_auc"], abs=1e-9)


@pytest.mark.slow
def test_models_that_do_not_compare_are_not_promoted(root):
    evaluated(root, seed=1, config=WEAK)
    other_task = evaluated(root, "multiclass", seed=2, config=STRONG)["promotion"]
    assert other_task["decision"] == "not comparable" and other_task["champion"] is None
    assert "task 'binary' (this run: 'multiclass')" in other_task["reason"]
    assert "metric 'roc_auc' (this run: 'log_loss')" in other_task["reason"]

    renamed = evaluated(root, seed=3, config=STRONG, rename={"temp": "temperature"})["promotion"]
    assert renamed["decision"] == "not comparable"
    assert "lack columns version 1 reads: ['temp']" in renamed["reason"]
    assert registry.read_alias(root, "unit", "production").version == 1


@pytest.mark.slow
def test_rules_always_and_never(root):
    evaluated(root, seed=1, config=STRONG)
    never = evaluated(root, seed=2, config=STRONG, rule="never")["promotion"]
    assert (never["decision"], never["version"]) == ("not promoted", 2)
    always = evaluated(root, seed=3, config=WEAK, rule="always")["promotion"]
    assert (always["decision"], always["version"]) == ("promoted", 3)
    assert registry.read_alias(root, "unit", "production").version == 3


def test_racing_better_promotions_end_on_the_best_and_every_move_improves(
    root, tmp_path, monkeypatch
):
    scores = {1: 0.70, 2: 0.74, 3: 0.72, 4: 0.80, 5: 0.78, 6: 0.76}
    for version in scores:
        path = tmp_path / f"m{version}"
        path.write_text(str(version))
        files = {"model.txt": registry.Artifact(path, storage.sha256_file(path), 1)}
        registry.register(root, "race", run_id=f"run-{version}", files=files, record={})

    # The champion's score on the challenger's rows: here, each version's known score.
    def known_score(uri, record, candidate, folder):
        return scores[record["version"]], ""

    monkeypatch.setattr(promotion, "champion_score", known_score)
    barrier = threading.Barrier(len(scores))
    decisions = {}

    def promote(version: int) -> None:
        candidate = promotion.Candidate(
            task="binary", target="y", classes=[0, 1], metric="roc_auc", score=scores[version],
            raw_test=pd.DataFrame(), y=np.array([]),
        )  # fmt: skip
        barrier.wait()
        decisions[version] = promotion.promote(
            root, "race", alias="production", rule="better", version=version,
            candidate=candidate, run_id=f"run-{version}", work_dir=tmp_path,
        )  # fmt: skip

    threads = [threading.Thread(target=promote, args=(v,)) for v in scores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    alias = registry.read_alias(root, "race", "production")
    assert alias.version == 4  # the best, whatever the order the threads ran in
    moved = [scores[h["version"]] for h in alias.history]
    assert moved == sorted(moved) and len(set(moved)) == len(moved)  # each move improved
    assert decisions[4]["decision"] == "promoted"
    assert {d["decision"] for v, d in decisions.items() if v != 4} <= {"promoted", "kept"}
