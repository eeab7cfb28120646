"""The stage table people watch: what ran, what came from the cache, what failed and why."""

from __future__ import annotations

from rich.console import Console

from mlbatch.controller.views import stage_table

PROFILE = {"wall_s": 12.34, "cpu_s": 20.5, "peak_rss_mb": 512.0}


def _render(state: dict) -> str:
    console = Console(width=160, record=True, color_system=None)
    console.print(stage_table(state))
    return console.export_text()


def test_ran_cached_failed_and_pending_stages():
    state = {
        "run_id": "20261126-090507-abc123",
        "stages": {
            "etl": {"state": "SUCCEEDED", "cached_from": "20261125-080000-ffffff",
                    "attempts": [{"id": "1-aaaa", "started": 1.0, "profile": PROFILE}]},
            "train": {"state": "SUCCEEDED",
                      "attempts": [{"id": "1-bbbb", "started": 1.0, "profile": PROFILE}]},
            "evaluate": {"state": "FAILED", "reason": "exit code 2 (bad input)",
                         "attempts": [{"id": "1-cccc", "started": 1.0, "ended": 3.5}]},
            "predict": {"state": "PENDING", "attempts": []},
        },
    }  # fmt: skip
    lines = {line.split()[1]: line for line in _render(state).splitlines() if "│" in line[:2]}
    assert "cached from 20261125-080000-ffffff" in lines["etl"] and "12.3s" not in lines["etl"]
    assert all(v in lines["train"] for v in ("12.3s", "20.5s", "512 MB"))
    assert "2.5s" in lines["evaluate"] and "exit code 2 (bad input)" in lines["evaluate"]
    assert "pending" in lines["predict"]


def test_the_run_result_ends_with_the_notes_a_person_must_not_miss(capsys):
    from mlbatch.controller.views import print_result

    note = "explore: 2 columns flagged as possible leaks (kept): a (AUC 0.97), b [x] (R² 0.91)"
    print_result({"run_id": "20261126-090507-abc123", "state": "succeeded",
                  "metrics": {"roc_auc": 0.81}, "reports": {}, "notes": [note]}, "")  # fmt: skip
    out = capsys.readouterr().out
    assert "test metrics: roc_auc 0.8100" in out and f"warning: {note}" in out
