"""Explore's relations, charts, notebook cells and report sections, for each task."""

from __future__ import annotations

import base64

import nbformat
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlbatch.spec import ExploreSpec
from mlbatch_jobs.explore import advice as column_advice
from mlbatch_jobs.explore import charts, notebook, plots, relations, report
from mlbatch_jobs.explore import summary as summaries

ODD = '<i>"odd" & $name$</i>'  # escaped in HTML, drawn without mathtext


def table(task: str, rows: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    data = pd.DataFrame({
        "x": x, "twin": x * 2 + 1, "skewed": rng.lognormal(0, 1.5, rows),
        "color": rng.choice(["r", "g", "b"], rows), ODD: rng.choice(["a", "b"], rows),
        "shade": rng.choice(["r", "g", "b"], rows), "constant": 1,
        "when": pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(np.arange(rows), "D"),
    })  # fmt: skip
    data.loc[rng.random(rows) < 0.1, ["skewed", "shade"]] = np.nan
    data["shade"] = data["shade"].astype(object).where(data["skewed"].notna(), None)
    if task == "binary":
        data["y"] = x + rng.normal(size=rows) > 0.5
    elif task == "multiclass":
        data["y"] = np.select([x < -0.5, x < 0.5], ["low", "mid"], "high")
    else:
        data["y"] = 3 * x + rng.normal(size=rows)
    return data


def analyse(task: str) -> tuple[dict, dict, dict]:
    data = table(task)
    arrow = pa.Table.from_pandas(data, preserve_index=False)
    summary = summaries.summarize(arrow, target="y", task=task)
    advised = column_advice.advise(
        arrow, data, target="y", task=task, lineage={}, known_after_prediction=[],
        id_columns=[], settings=ExploreSpec(),
    )  # fmt: skip
    order = [c for c in data.columns if c != "y"]
    return summary, advised, relations.relations(data, target="y", task=task, order=order)


def test_spearman_correlation_and_cramers_v():
    data = table("binary")
    correlation = relations.correlation(data, ["x", "twin", "skewed"])
    matrix = np.array(correlation["matrix"], dtype=float)
    assert correlation["columns"] == ["x", "twin", "skewed"] and matrix[0, 1] == pytest.approx(1)
    assert abs(matrix[0, 2]) < 0.15
    same = relations.cramers_v(*(pd.factorize(data["color"])[0],) * 2)
    independent = relations.cramers_v(pd.factorize(data["color"])[0], pd.factorize(data[ODD])[0])
    assert same == pytest.approx(1) and independent < 0.1


def test_missing_together_and_outliers():
    data = table("binary")
    together = relations.missing_together(data)
    assert together["columns"] == ["skewed", "shade"]
    assert together["matrix"][0][1] == pytest.approx(1.0)
    found = {entry["column"]: entry for entry in relations.outliers(data, ["x", "skewed"])}
    values = data["skewed"].dropna()
    q1, q3 = values.quantile([0.25, 0.75])
    expected = ((values < q1 - 1.5 * (q3 - q1)) | (values > q3 + 1.5 * (q3 - q1))).sum()
    assert found["skewed"]["iqr"] == expected > found["x"]["iqr"]
    assert found["x"]["z"] == int(
        (np.abs(data["x"] - data["x"].mean()) > 3 * data["x"].std(ddof=0)).sum()
    )


def test_target_by_key_bins_numbers_and_groups_rare_categories():
    data = table("binary")
    by_bin = relations.target_by_key(data["x"], data["y"], "binary")
    assert len(by_bin["labels"]) == 20 and sum(by_bin["rows"]) == len(data)
    rates = [share[1] for share in by_bin["shares"]]
    assert rates[-1] > rates[0]  # y rises with x
    many = pd.Series([f"v{i}" for i in range(len(data))])
    by_category = relations.target_by_key(many, data["y"], "binary")
    assert "other" in by_category["labels"] and len(by_category["labels"]) == 11
    with_missing = relations.target_by_key(data["shade"], data["y"], "binary")
    assert "missing" in with_missing["labels"]
    regression = relations.target_by_key(data["color"], data["x"], "regression")
    assert set(regression) == {"labels", "rows", "mean"}


@pytest.mark.slow  # draws every chart: a few seconds per task
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_every_chart_and_section_for_each_task(task):
    summary, advised, found = analyse(task)
    images = {**plots.render_plots(summary), **charts.render_charts(summary, advised, found)}
    expected = {"target", "missing", "distributions", "power", "correlation", "association",
                "missing_together", "by_target", "outliers", "categories"}  # fmt: skip
    if task == "regression":
        expected.discard("association") if len(found["association"]["columns"]) < 2 else None
    assert expected <= set(images)
    for uri in images.values():
        assert base64.b64decode(uri.split(",", 1)[1]).startswith(b"\x89PNG")
    page = report.render_report(summary, images, title="t", advice=advised, relations=found,
                                notebook=True)  # fmt: skip
    assert page.count('src="data:image/png;base64,') == len(images)
    for heading in ("Column advice", "Single-column predictive power", "Relations between",
                    "Outliers", "Top categories", "Notebook"):  # fmt: skip
        assert heading in page
    assert ODD not in page and "&lt;i&gt;&quot;odd&quot; &amp; $name$&lt;/i&gt;" in page


def test_advice_section_lists_every_reason():
    summary, advised, found = analyse("binary")
    assert advised["drop"] == ["constant"]
    page = report.render_report(summary, {}, title="t", advice=advised, relations=found)
    for column in advised["drop"] + advised["flag"]:
        for reason in advised["columns"][column]["reasons"]:
            assert reason["message"].replace("'", "&#x27;") in page


def test_notebook_cells_state_the_findings():
    summary, advised, found = analyse("binary")
    built = notebook.build_notebook(
        run_uri="file:///tmp/store/runs/20250101-000000-abcdef", title="demo", summary=summary,
        advice=advised, relations=found,
    )  # fmt: skip
    nbformat.validate(built)
    markdown = "\n".join(c.source for c in built.cells if c.cell_type == "markdown")
    assert "`x` and `twin` (1.00)" in markdown  # the strongest correlated pair
    for column in advised["drop"]:
        assert f"**drop** `{column}`" in markdown
    code = [c.source for c in built.cells if c.cell_type == "code"]
    assert code[0].startswith("RUN = 'file:///tmp/store/runs/20250101-000000-abcdef'")
    assert any('load_manifest(layout, "etl")' in source for source in code)
    assert built.metadata["kernelspec"]["name"] == "python3"


def test_writable_dirs_keep_everything_under_one_root(tmp_path):
    dirs = notebook.writable_dirs(tmp_path)
    assert {"MPLCONFIGDIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR",
            "IPYTHONDIR"} <= set(dirs)  # fmt: skip
    assert all(
        value.startswith(str(tmp_path)) for name, value in dirs.items() if name.endswith("DIR")
    )
