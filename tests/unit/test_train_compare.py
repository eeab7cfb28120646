"""`mlbatch compare`: the train stages' leaderboards of several runs side by side."""

from __future__ import annotations

import json

from features_fixture import attempt_folder, commit_attempt, new_file_run
from typer.testing import CliRunner

from mlbatch.controller.cli import app


def run_with_leaderboard(root, scores: dict[str, float], best: str) -> str:
    layout = new_file_run(root)
    folder = attempt_folder(layout, "train", "1-bbbb")
    folder.mkdir(parents=True)
    families = [
        {"family": family, "roc_auc": score, "valid": score, "cv": None, "test": score - 0.01}
        for family, score in scores.items()
    ]
    document = {"metric": "roc_auc", "mode": "max", "selection": "valid", "best": best,
                "families": families}  # fmt: skip
    (folder / "leaderboard.json").write_text(json.dumps(document))
    commit_attempt(layout, "train", "1-bbbb")
    return layout.run_id


def test_compare_shows_leaderboards_side_by_side(tmp_path):
    root = tmp_path / "store"
    first = run_with_leaderboard(root, {"xgboost": 0.74, "linear": 0.68}, "xgboost")
    second = run_with_leaderboard(root, {"lightgbm": 0.75, "linear": 0.69}, "lightgbm")
    runner = CliRunner()

    shown = runner.invoke(app, ["compare", first, second, "--storage", str(root)])
    assert shown.exit_code == 0, shown.output
    rows = {line.split()[1]: line for line in shown.output.splitlines() if "│" in line}
    assert "0.7400 / 0.7300 *" in rows["xgboost"] and "0.6800" in rows["linear"]
    assert "0.6900" in rows["linear"] and "0.7500 / 0.7400 *" in rows["lightgbm"]

    as_json = runner.invoke(app, ["compare", first, second, "--storage", str(root), "-o", "json"])
    assert as_json.exit_code == 0, as_json.output
    runs = json.loads(as_json.output)["runs"]
    assert [run["run_id"] for run in runs] == [first, second]
    assert [e["family"] for e in runs[1]["families"]] == ["lightgbm", "linear"]


def test_compare_names_a_run_without_a_train_stage(tmp_path):
    layout = new_file_run(tmp_path / "store")
    result = CliRunner().invoke(
        app, ["compare", layout.run_id, "--storage", str(tmp_path / "store")]
    )
    assert result.exit_code != 0
    assert "has no committed train stage" in str(result.exception)
