"""The explore stage: its numbers, its report, and the program run against a run folder."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from features_fixture import commit_outputs

from mlbatch import storage
from mlbatch.errors import BadInput
from mlbatch.manifest import OutputFile, load_manifest
from mlbatch.runs import RunLayout, write_spec
from mlbatch_jobs.explore import plots, report
from mlbatch_jobs.explore import summary as summaries

ODD_NAME = '<b>&"odd"</b> $x$'  # escaped in the HTML; drawn without mathtext in the plots


def table() -> pd.DataFrame:
    """Eight rows: numeric, string, boolean and datetime columns with missing values."""
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5, 6, 7, 8],
            "distance": [100.0, 250.0, np.nan, 400.0, 100.0, None, 50.0, 300.0],
            "carrier": ["AA", "UA", "AA", None, "AA", "DL", "UA", "AA"],
            "weekend": pd.array([True, False, False, None, False, True, False, False]),
            "scheduled": pd.to_datetime(
                [
                    "2013-01-01",
                    "2013-01-05",
                    None,
                    "2013-02-01",
                    "2013-01-02",
                    "2013-03-31",
                    "2013-01-01",
                    None,
                ]
            ),  # fmt: skip
            ODD_NAME: ["a", "b", "a", "b", "a", "b", "a", "b"],
            "arr_delay": [30.0, -5.0, 0.0, 45.0, 10.0, 20.0, None, 5.0],
            "delayed": [True, False, False, True, False, True, False, False],
            "origin": ["JFK", "LGA", "JFK", "EWR", "JFK", "LGA", "JFK", "JFK"],
        }
    )


def summarize(target: str, task: str, **kwargs) -> dict:
    return summaries.summarize(
        table(), target=target, task=task,
        known_after_prediction=["arr_delay", "dep_time"], id_columns=["id"], **kwargs,
    )  # fmt: skip


def column(summary: dict, name: str) -> dict:
    return next(c for c in summary["column_summaries"] if c["name"] == name)


def test_counts_and_missing_values_are_exact():
    summary = summarize("delayed", "binary")
    assert (summary["rows"], summary["columns"]) == (8, 9)
    # distance 2 (a NaN and a None), carrier 1, weekend 1, scheduled 2, arr_delay 1
    assert summary["missing_cells"] == 7
    assert summary["missing_share"] == pytest.approx(7 / 72)
    assert summary["sample"] == {"rows": 8, "seed": 0}


def test_numeric_string_boolean_and_datetime_columns():
    summary = summarize("delayed", "binary")
    distance = column(summary, "distance")
    assert distance["kind"] == "numeric"
    assert (distance["missing"], distance["missing_share"]) == (2, 0.25)
    assert (distance["distinct"], distance["min"], distance["max"]) == (5, 50.0, 400.0)
    assert distance["mean"] == pytest.approx(1200 / 6)
    carrier = column(summary, "carrier")
    assert (carrier["kind"], carrier["missing"], carrier["distinct"]) == ("string", 1, 3)
    assert (carrier["top"], carrier["top_count"]) == ("AA", 4)
    assert carrier["min"] is None
    weekend = column(summary, "weekend")
    assert (weekend["kind"], weekend["missing"], weekend["distinct"]) == ("boolean", 1, 2)
    assert (weekend["top"], weekend["top_count"]) == (False, 5)
    scheduled = column(summary, "scheduled")
    assert (scheduled["kind"], scheduled["missing"], scheduled["distinct"]) == ("datetime", 2, 5)
    assert (scheduled["min"], scheduled["max"]) == ("2013-01-01T00:00:00", "2013-03-31T00:00:00")
    assert column(summary, "id")["role"] == "id"
    assert column(summary, "arr_delay")["role"] == "known after prediction"
    assert column(summary, "delayed")["role"] == "target"
    assert column(summary, "origin")["role"] == "feature"


def test_dtypes_come_from_the_etl_schema_when_it_names_them():
    summary = summarize("delayed", "binary", dtypes={"carrier": "str"})
    assert column(summary, "carrier")["dtype"] == "str"
    assert column(summary, "distance")["dtype"] == "double"  # Arrow's name otherwise


def test_binary_target_balance():
    summary = summarize("delayed", "binary")
    target = summary["target"]
    assert target["classes"] == [
        {"value": False, "count": 5, "share": 5 / 8},
        {"value": True, "count": 3, "share": 3 / 8},
    ]
    assert target["minority_class_share"] == 3 / 8
    assert summaries.metrics(summary) == {
        "rows": 8, "columns": 9, "missing_share": pytest.approx(7 / 72),
        "minority_class_share": 3 / 8,
    }  # fmt: skip


def test_multiclass_target_balance_ignores_rows_without_a_target():
    summary = summarize("carrier", "multiclass")
    target = summary["target"]
    assert target["missing"] == 1
    assert [(c["value"], c["count"]) for c in target["classes"]] == [
        ("AA", 4), ("UA", 2), ("DL", 1)
    ]  # fmt: skip
    assert target["classes"][0]["share"] == 4 / 7
    assert target["minority_class_share"] == 1 / 7
    assert summaries.metrics(summary)["minority_class_share"] == 1 / 7


def test_regression_target():
    summary = summarize("arr_delay", "regression")
    target = summary["target"]
    assert target["missing"] == 1
    assert (target["min"], target["max"], target["median"]) == (-5.0, 45.0, 10.0)
    assert target["mean"] == pytest.approx(105 / 7)
    assert sum(target["histogram"]["counts"]) == 7
    assert len(target["histogram"]["edges"]) == summaries.TARGET_BINS + 1
    assert "minority_class_share" not in summaries.metrics(summary)
    # the target is not "known after prediction", even when the spec lists it there
    assert summary["not_used_as_features"]["known_after_prediction"] == []
    assert summary["not_used_as_features"]["not_in_table"] == ["dep_time"]


def test_distributions_cover_numeric_features_only():
    summary = summarize("delayed", "binary")
    assert list(summary["distributions"]) == ["distance", "arr_delay"]  # not id, not target
    assert sum(summary["distributions"]["distance"]["counts"]) == 6


def test_bad_target_or_task_is_bad_input():
    with pytest.raises(BadInput, match="'nope' is not a column"):
        summarize("nope", "binary")
    with pytest.raises(BadInput, match="task 'auto'"):
        summarize("delayed", "auto")
    with pytest.raises(BadInput, match="not numeric"):
        summarize("carrier", "regression")


def test_sample_is_bounded_seeded_and_in_table_order():
    big = pa.table({"x": np.arange(1000)})
    sample = summaries.sample_table(big, 100, seed=1)
    values = sample.column("x").to_numpy()
    assert len(values) == 100 and len(set(values)) == 100
    assert (np.diff(values) > 0).all()
    assert values.tolist() == summaries.sample_table(big, 100, seed=1).column("x").to_pylist()
    assert summaries.sample_table(big, 1000) is big


def test_summary_is_strict_json():
    data = table()
    data["distance"] = [np.inf, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    summary = summaries.summarize(data, target="delayed", task="binary")
    assert column(summary, "distance")["max"] == "inf"
    json.dumps(summary, allow_nan=False)  # raises on NaN or infinity


def test_report_embeds_plots_and_escapes_names():
    summary = summarize("delayed", "binary")
    images = plots.render_plots(summary)
    assert set(images) == {"target", "missing", "distributions"}
    for uri in images.values():
        assert uri.startswith("data:image/png;base64,")
        assert base64.b64decode(uri.split(",", 1)[1]).startswith(b"\x89PNG")
    page = report.render_report(summary, images, title="demo <run>")
    assert page.count('src="data:image/png;base64,') == 3
    assert "&lt;b&gt;&amp;&quot;odd&quot;&lt;/b&gt; $x$" in page
    assert ODD_NAME not in page and "<b>&" not in page
    assert "<title>demo &lt;run&gt;</title>" in page
    assert "not used as features" in page
    assert "<code>arr_delay</code>" in page and "<code>id</code>" in page
    assert "37.5%" in page  # the minority class share


def test_regression_report_and_a_table_without_missing_values():
    data = table().dropna()
    summary = summaries.summarize(data, target="arr_delay", task="regression")
    images = plots.render_plots(summary)
    assert set(images) == {"target", "distributions"}
    page = report.render_report(summary, images, title="regression")
    assert "No column has missing values." in page
    assert page.count('src="data:image/png;base64,') == 2


RUN_ID = "20250101-000000-abcdef"


def write_etl_outputs(layout: RunLayout, data: pd.DataFrame, schema: dict) -> None:
    attempt = "1-aaaa"
    folder = storage.local_path(layout.attempt_uri("etl", attempt))
    folder.mkdir(parents=True)
    data.to_parquet(folder / "table.parquet", index=False)
    (folder / "schema.json").write_text(json.dumps(schema))
    outputs = {
        name: OutputFile(
            size=(folder / name).stat().st_size, sha256=storage.sha256_file(folder / name)
        )
        for name in ("table.parquet", "schema.json")
    }
    commit_outputs(layout, "etl", attempt, outputs)


@pytest.mark.slow  # starts the stage program
def test_stage_program_commits_report_and_summary(tmp_path: Path):
    layout = RunLayout(storage_uri=storage.resolve_uri(str(tmp_path / "store")), run_id=RUN_ID)
    write_spec(
        layout,
        {
            "name": "demo",
            "target": "delayed",
            "known_after_prediction": ["arr_delay"],
            "id_columns": ["id"],
            "etl": {"sources": {"flights": {"uri": "raw/flights.csv"}}},
            "explore": {"notebook": False},  # tests/integration/test_notebook.py runs it
        },
    )
    data = table()
    schema = {
        "target": "delayed", "task": "binary", "rows": len(data),
        "columns": {name: str(dtype) for name, dtype in data.dtypes.items()},
        "lineage": {"delayed": {"expression": "arr_delay > 15", "derived_from": ["arr_delay"]}},
    }  # fmt: skip
    write_etl_outputs(layout, data, schema)
    env = {k: v for k, v in os.environ.items() if k != "MPLCONFIGDIR"}
    result = subprocess.run(
        [sys.executable, "-m", "mlbatch_jobs.explore", "--run", layout.uri, "--attempt", "1-abcd"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr

    manifest, _ = load_manifest(layout, "explore")
    assert (manifest.stage, manifest.attempt, manifest.status) == ("explore", "1-abcd", "succeeded")
    assert set(manifest.outputs) == {"report.html", "summary.json", "advice.json"}
    folder = storage.local_path(layout.attempt_uri("explore", "1-abcd"))
    for name, recorded in manifest.outputs.items():
        assert recorded.size == (folder / name).stat().st_size
        assert recorded.sha256 == storage.sha256_file(folder / name)
    assert [i.uri for i in manifest.inputs] == [layout.manifest_uri("etl")]
    assert manifest.metrics == {
        "rows": 8, "columns": 9, "missing_share": pytest.approx(7 / 72),
        "minority_class_share": 3 / 8, "advised_drops": manifest.metrics["advised_drops"],
        "flagged": [], "suspected_leaks": [],
    }  # fmt: skip
    assert {"id", "arr_delay"} <= set(manifest.metrics["advised_drops"])

    summary = json.loads((folder / "summary.json").read_text())
    assert summary["rows"] == 8 and summary["target"]["name"] == "delayed"
    assert column(summary, "carrier")["dtype"] == "str"  # etl's dtype names
    assert summary["lineage"]["delayed"]["expression"] == "arr_delay > 15"
    advice = json.loads((folder / "advice.json").read_text())
    assert advice["columns"]["arr_delay"]["reasons"][0]["check"] == "target_lineage"
    # 8 rows are too few for features' 70/20/10 split: explore scores them all and says so.
    assert advice["unsplit"].startswith("every row scored: features cannot split")
    page = (folder / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') >= 3
    assert "arr_delay &gt; 15" in page and "Column advice" in page

    logs = sorted((folder / "logs").glob("*.log"))
    assert logs, "the stage uploads its log in chunks"
    assert "[mlbatch] explore attempt 1-abcd" in "".join(p.read_text() for p in logs)


def test_integer_columns_with_few_values_get_one_bin_per_value():
    column = pa.chunked_array([[1, 2, 2, 5, None]])
    assert summaries.histogram(column) == {
        "edges": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5],
        "counts": [1, 2, 0, 0, 1],
    }
    assert len(summaries.histogram(pa.chunked_array([[0, 1000]]))["counts"]) == 30
