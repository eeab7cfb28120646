"""Explore's streamed read of etl's table (reading.py, tally.py, sketch.py): the samples are
the rows the in-memory functions draw, the facts are exact over every row of a file of many
row groups read in small batches, and past the exact limit the estimates are sound and
said to be estimates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from mlbatch.spec import PipelineSpec
from mlbatch_jobs.explore import advice as column_advice
from mlbatch_jobs.explore import advice_report, reading, report
from mlbatch_jobs.explore import summary as summaries
from mlbatch_jobs.explore import tally as tally_module
from mlbatch_jobs.explore.sketch import DistinctSketch
from mlbatch_jobs.explore.training import training_table

ROWS = 5000


def table(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """Every kind of column, with missing values (None and NaN), a rising counter, whole
    floats, a category and row ids; `late` is the binary target."""
    rng = np.random.default_rng(seed)
    distance = rng.lognormal(6, 0.6, rows)
    distance[rng.random(rows) < 0.1] = np.nan
    return pd.DataFrame({
        "ticket": [f"T{i:06d}" for i in rng.permutation(rows)],
        "row": rng.permutation(rows) + 1,
        "counter": np.arange(rows) * 4 // 5 + 7,  # rising, 80% distinct
        "hour": rng.integers(5, 23, rows),
        "seats": np.round(rng.normal(150, 30, rows)),
        "distance": distance,
        "carrier": pd.array(rng.choice(["AA", "B6", "DL", None], rows), dtype=object),
        "weekend": rng.random(rows) < 0.3,
        "when": pd.Timestamp("2013-01-01", tz="UTC")
        + pd.to_timedelta(rng.integers(0, 10**6, rows), unit="s"),
        "category": pd.Categorical(rng.choice(["x", "y", "z"], rows)),
        "late": rng.random(rows) < 0.3,
    })  # fmt: skip


def spec_of(split: dict | None = None, **explore) -> PipelineSpec:
    return PipelineSpec.model_validate({
        "name": "unit", "target": "late", "task": "binary",
        "etl": {"sources": {"table": {"uri": "table.csv"}}}, "explore": explore,
        "features": {"split": split or {}},
    })  # fmt: skip


def parquet(data: pd.DataFrame, folder: Path, row_group_size: int = 700) -> Path:
    path = folder / "table.parquet"
    pq.write_table(pa.Table.from_pandas(data, preserve_index=False), path,
                   row_group_size=row_group_size)  # fmt: skip
    return path


def read(path: Path, spec: PipelineSpec, **kwargs) -> reading.Reading:
    kwargs.setdefault("batch_rows", 512)
    return reading.read_table(path, spec, target="late", task="binary",
                              sample_rows=spec.explore.sample_rows, seed=spec.explore.seed,
                              **kwargs)  # fmt: skip


@pytest.mark.parametrize("split", [{}, {"strategy": "time", "time_column": "when"}])
@pytest.mark.parametrize("sample_rows", [600, ROWS])
def test_streamed_samples_are_the_rows_the_in_memory_functions_draw(tmp_path, split, sample_rows):
    spec = spec_of(split, sample_rows=sample_rows, seed=3)
    path = parquet(table(), tmp_path)
    whole = pq.read_table(path)
    got = read(path, spec)

    train, unsplit = training_table(whole, spec, target="late", task="binary")
    assert unsplit is None and got.unsplit is None
    assert got.training_rows == train.num_rows < ROWS
    expected = summaries.sample_table(train, sample_rows, seed=3)
    assert got.training_sample.equals(expected)
    assert got.tally.sample.equals(summaries.sample_table(whole, sample_rows, seed=3))
    assert got.target.equals(whole.column("late"))


def test_a_table_too_small_to_split_is_sampled_from_every_row(tmp_path):
    spec = spec_of(sample_rows=4)
    path = parquet(table(rows=8), tmp_path, row_group_size=3)
    got = read(path, spec, batch_rows=2)
    assert got.unsplit.startswith("every row scored: features cannot split")
    assert got.training_rows == 8
    whole = pq.read_table(path)
    assert got.training_sample.equals(summaries.sample_table(whole, 4, seed=0))


def test_facts_are_exact_over_every_row_of_many_row_groups(tmp_path):
    path = parquet(table(), tmp_path)
    whole = pq.read_table(path)
    got = read(path, spec_of(sample_rows=600))
    summary = summaries.summarize_tally(got.tally, got.target, target="late", task="binary",
                                        schema=got.schema)  # fmt: skip
    assert summary["rows"] == ROWS and summary["estimated"] == {}
    for entry in summary["column_summaries"]:
        values = summaries.clean(whole.column(entry["name"]))
        assert entry["missing"] == values.null_count, entry["name"]
        assert entry["distinct"] == pc.count_distinct(values).as_py(), entry["name"]
        if entry["kind"] == "numeric":
            assert entry["min"] == pc.min(values).as_py()
            assert entry["max"] == pc.max(values).as_py()
            assert entry["mean"] == pytest.approx(pc.mean(values).as_py(), rel=1e-12)
    assert column(summary, "distance")["missing"] > 0  # NaN counts as missing

    # Every summary number equals the in-memory summary's (sample included), and so does
    # every piece of advice; the facts behind it too, column by column.
    memory = summaries.summarize(whole, target="late", task="binary", sample_rows=600)
    assert _json(summary) == _json(memory)
    sample = got.training_sample.to_pandas()
    settings = spec_of().explore
    streamed, in_memory = (
        column_advice.advise(
            facts,
            sample,
            target="late",
            task="binary",
            lineage={},
            known_after_prediction=[],
            id_columns=[],
            settings=settings,
        )
        for facts in (got.tally, whole)
    )
    assert _json(streamed) == _json(in_memory)
    assert streamed["columns"]["counter"]["reasons"][0]["check"] == "monotonic"
    assert streamed["columns"]["row"]["reasons"][0]["check"] == "unique_per_row"
    for name in whole.column_names:
        facts = column_advice.tallied_facts(got.tally.columns[name])
        assert facts == column_advice.column_facts(whole.column(name)), name


def test_text_stored_as_codes_streams_as_codes_and_the_samples_as_the_table_s_types(tmp_path):
    """`carrier` is stored as dictionary codes, so read as codes; `ticket` as strings once
    its dictionary outgrew its page, so read as strings; the facts are exact either way and
    the samples hold the table's own types."""
    path = tmp_path / "table.parquet"
    pq.write_table(pa.Table.from_pandas(table(), preserve_index=False), path,
                   row_group_size=700, dictionary_pagesize_limit=1024)  # fmt: skip
    assert reading._coded_text(pq.ParquetFile(path)) == ["carrier"]
    whole = pq.read_table(path)
    got = read(path, spec_of(sample_rows=600))
    assert got.tally.sample.schema.equals(whole.schema)
    assert got.training_sample.schema.equals(whole.schema)
    for name in ("carrier", "ticket", "category"):
        facts = column_advice.tallied_facts(got.tally.columns[name])
        assert facts == column_advice.column_facts(whole.column(name)), name


def test_a_column_rising_in_each_batch_but_not_across_them_is_not_monotonic(tmp_path):
    data = table(rows=2048).assign(counter=np.tile(np.arange(512), 4))
    got = read(parquet(data, tmp_path, row_group_size=512), spec_of(sample_rows=100))
    assert got.tally.columns["counter"].rising is False
    assert got.tally.columns["row"].monotonic is False
    assert column_advice.tallied_facts(got.tally.columns["counter"]).monotonic is False


def test_past_the_exact_limit_distinct_counts_are_estimated_and_said(tmp_path):
    """A limit of 1,000 exact values on 20,000 rows: `ticket` is unique, `pair` repeats each
    value four times (25% distinct). A 10% sample would see `pair` nearly unique (and drop
    it as an identifier); the sketch over every row keeps it a high-cardinality category."""
    rows = 20_000
    rng = np.random.default_rng(1)
    data = pd.DataFrame({
        "ticket": [f"T{i:06d}" for i in rng.permutation(rows)],
        "pair": [f"P{i:05d}" for i in rng.permutation(np.repeat(np.arange(rows // 4), 4))],
        "row": rng.permutation(rows) + 1,
        "hour": rng.integers(5, 23, rows),
        "late": rng.random(rows) < 0.3,
    })  # fmt: skip
    spec = spec_of(sample_rows=2000)
    got = read(parquet(data, tmp_path, row_group_size=3000), spec, exact_distinct=1000,
               batch_rows=1024)  # fmt: skip
    summary = summaries.summarize_tally(got.tally, got.target, target="late", task="binary",
                                        schema=got.schema)  # fmt: skip
    assert set(summary["estimated"]) == {"ticket", "pair", "row"}
    assert summary["estimated"]["pair"]["top_values_sample_rows"] == 2000
    for name, truth in (("ticket", rows), ("pair", rows // 4), ("row", rows)):
        entry = column(summary, name)
        assert entry["distinct"] == pytest.approx(truth, rel=0.03), name
        assert entry["distinct"] <= rows  # never more values than rows
        assert entry["estimated"]["distinct"] == "HyperLogLog"
    assert column(summary, "hour")["distinct"] == 18  # exact below the limit
    assert "estimated" not in column(summary, "hour")
    assert summary["top_categories"]["pair"][0]["count"] <= 4  # counted on the sample
    page = report.render_report(summary, {}, title="t", advice=None, relations=None,
                                notebook=False)  # fmt: skip
    assert "HyperLogLog estimate over every row" in page and "≈" in page
    assert "except <code>ticket</code>, <code>pair</code>" in advice_report.categories_section(
        "data:image/png;base64,", {"ticket": 2000, "pair": 2000}
    )

    advice = column_advice.advise(
        got.tally, got.training_sample.to_pandas(), target="late", task="binary", lineage={},
        known_after_prediction=[], id_columns=[], settings=spec.explore,
    )  # fmt: skip
    assert set(advice["estimated"]) == {"ticket", "pair", "row"}
    ticket = advice["columns"]["ticket"]["reasons"][0]
    assert ticket["check"] == "unique_per_row" and "distinct in about" in ticket["message"]
    assert advice["columns"]["row"]["reasons"][0]["check"] == "unique_per_row"  # fills range
    pair = advice["columns"]["pair"]
    assert pair["action"] == "flag"
    assert [r["check"] for r in pair["reasons"]] == ["high_cardinality"]


def test_sketch_estimates_within_its_error():
    sketch = DistinctSketch()
    values = np.arange(300_000) * 7
    for part in np.array_split(values, 7):
        sketch.add(pa.array(part))
        sketch.add(pa.array(part[:1000]))  # seen again: changes nothing
    assert sketch.estimate() == pytest.approx(300_000, rel=0.025)
    small = DistinctSketch()
    small.add(pa.array(["a", "b", None, "a"]))
    assert round(small.estimate()) == 2


def _json(data: dict) -> str:
    """JSON with floats to 12 digits: a mean summed batch by batch may differ from one
    summed in one go in the last bits."""
    return json.dumps(_rounded(data), sort_keys=True, allow_nan=False)


def _rounded(data):
    if isinstance(data, float):
        return float(f"{data:.12g}")
    if isinstance(data, dict):
        return {k: _rounded(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_rounded(v) for v in data]
    return data


def column(summary: dict, name: str) -> dict:
    return next(c for c in summary["column_summaries"] if c["name"] == name)


def test_value_counts_of_whole_numbers_by_bins_equal_arrow_s():
    """Whole numbers of a narrow range are counted by np.bincount; wide ranges, -0.0 (a
    value of its own to Arrow) and fractions by Arrow's hash: the counts are the same."""
    rng = np.random.default_rng(4)
    columns = {
        "widening": np.r_[rng.integers(0, 100, 3000), rng.integers(-(10**6), 10**6, 3000)],
        "signed_zero": np.r_[rng.integers(-3, 3, 3000).astype(float), [-0.0, 0.0] * 1500],
        "whole_then_not": np.r_[rng.integers(0, 50, 3000).astype(float), rng.random(3000)],
    }
    for name, values in columns.items():
        array = pa.array(values)
        tally = tally_module.ColumnTally(array.type, exact_distinct=None)
        for start in range(0, len(array), 1000):
            tally.add(array.slice(start, 1000))
        tally.finish()
        expected = pc.value_counts(array)
        # repr keeps -0.0 apart from 0.0, as Arrow does (a dict would merge them)
        wanted = sorted(zip(map(repr, expected.field("values").to_pylist()),
                            expected.field("counts").to_pylist(), strict=True))  # fmt: skip
        got = sorted((repr(v), n) for v, n in tally.value_counts())
        assert got == wanted and tally.distinct() == len(wanted), name


def test_the_stage_shares_its_read_with_its_notebook_for_that_run_only(tmp_path, monkeypatch):
    monkeypatch.delenv(reading.SHARED_ENV, raising=False)
    assert reading.shared("file:///runs/a") is None  # run elsewhere: the notebook streams
    path = parquet(table(rows=300), tmp_path)
    got = read(path, spec_of(sample_rows=100))
    with pa.OSFile(str(path)) as source:  # as the notebook reads it from storage
        assert read(source, spec_of(sample_rows=100)).training_sample.equals(got.training_sample)
    reading.share(got, tmp_path / "reading.pickle", run_uri="file:///runs/a")
    again = reading.shared("file:///runs/a")
    assert again.training_sample.equals(got.training_sample) and again.tally.rows == 300
    assert again.tally.columns["hour"].value_counts() == got.tally.columns["hour"].value_counts()
    assert reading.shared("file:///runs/b") is None  # another RUN: not this read
