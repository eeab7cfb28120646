"""Each transform step, run by the pandas engine on small tables, with the counts it
reports and the lineage it records."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from mlbatch.errors import BadInput
from mlbatch.spec import validate_spec
from mlbatch_jobs.etl import engine_pandas
from mlbatch_jobs.etl.files import resolve_files
from mlbatch_jobs.etl.plan import build_plan

FLIGHTS = "id,carrier,origin,hour,delay,tail\n" + "\n".join([
    "1,UA,JFK,5,10,N1", "2,AA,LGA,5,30,N2", "3,UA,JFK,6,,N9", "4,ZZ,EWR,7,-5,", "5,AA,LGA,6,20,N2",
]) + "\n"  # fmt: skip
WEATHER = "origin,hour,temp\nJFK,5,30.5\nLGA,5,31\nJFK,6,29\nLGA,6,28\nJFK,5,99\n,5,0\n"
PLANES = "tailnum,year,seats\nN1,2001,150\nN2,2005,180\n"


def run(tmp_path: Path, steps: list, *, target: str = "delay", sample=None, **etl):
    for name, text in (("flights", FLIGHTS), ("weather", WEATHER), ("planes", PLANES)):
        (tmp_path / f"{name}.csv").write_text(text)
    sources = {n: {"uri": f"{n}.csv"} for n in ("flights", "weather", "planes")}
    spec = validate_spec({"name": "t", "target": target,
                          "etl": {"sources": sources, "steps": steps, **etl}})  # fmt: skip
    files = {n: resolve_files(n, s, f"file://{tmp_path}") for n, s in spec.etl.sources.items()}
    plan = build_plan(spec, files)
    table, outcome = engine_pandas.run(plan, sample=sample, seed=spec.etl.seed)
    return plan, table, outcome


def test_left_join_on_two_keys_keeps_the_first_duplicate(tmp_path):
    steps = [{"join": {"source": "weather", "on": ["origin", "hour"]}}]
    plan, table, outcome = run(tmp_path, steps, target="id")
    assert table["temp"].to_pylist() == [30.5, 31.0, 29.0, None, 28.0]
    assert outcome.steps[0] == {"rows_in": 5, "rows_out": 5, "unmatched": 1}
    assert plan.joins["step 1 join weather"] == {"duplicate_keys_dropped": 1,
                                                 "null_keys_dropped": 1}  # fmt: skip
    assert plan.origin["temp"] == "weather" and plan.origin["id"] == "flights"


def test_inner_join_with_other_key_names_and_suffix(tmp_path):
    steps = [{"join": {"source": "planes", "on": ["tail"], "right_on": ["tailnum"],
                       "how": "inner", "suffix": "_p"}},
             {"derive": {"year": "seats * 0"}},
             {"join": {"source": "planes", "on": ["tail"], "right_on": ["tailnum"]}}]  # fmt: skip
    _, table, outcome = run(tmp_path, steps)
    assert table["id"].to_pylist() == [1, 2, 5]
    assert "tailnum" not in table.column_names
    assert table["year_planes"].to_pylist() == [2001, 2005, 2005]  # clashes get the suffix
    assert table["seats_planes"].to_pylist() == [150, 180, 180]
    assert outcome.steps[0]["rows_out"] == 3


def test_join_errors_name_the_step_and_column(tmp_path):
    with pytest.raises(BadInput, match=r"step 1 join weather: no column 'hour2' in the table"):
        run(tmp_path, [{"join": {"source": "weather", "on": ["origin", "hour2"],
                                 "right_on": ["origin", "hour"]}}])  # fmt: skip
    with pytest.raises(BadInput, match=r"step 1 join weather: source weather has no column 'x'"):
        run(tmp_path, [{"join": {"source": "weather", "on": ["origin"], "right_on": ["x"]}}])
    with pytest.raises(BadInput, match="key 'tail' is string in the table but int64 in source"):
        run(tmp_path, [{"join": {"source": "planes", "on": ["tail"], "right_on": ["year"]}}])


def test_select_rename_drop(tmp_path):
    steps = [{"select": ["id", "carrier", "delay"]}, {"rename": {"carrier": "airline"}},
             {"drop": ["id"]}]  # fmt: skip
    plan, table, _ = run(tmp_path, steps)
    assert table.column_names == ["airline", "delay"]
    assert list(plan.origin) == ["airline", "delay"]
    with pytest.raises(BadInput, match=r"step 1 drop: no column 'nope' in the table \(id, "):
        run(tmp_path, [{"drop": ["nope"]}])
    with pytest.raises(BadInput, match="two columns would be called 'id'"):
        run(tmp_path, [{"rename": {"carrier": "id"}}])


def test_filter_keeps_rows_where_true(tmp_path):
    _, table, outcome = run(tmp_path, [{"filter": "delay > 5 and carrier != 'ZZ'"}])
    assert table["id"].to_pylist() == [1, 2, 5]  # null delay: not kept
    assert outcome.steps[0] == {"rows_in": 5, "rows_out": 3}
    with pytest.raises(BadInput, match="step 1 filter: 'delay' is int64, not true/false"):
        run(tmp_path, [{"filter": "delay"}])


def test_derive_records_lineage_through_other_derived_columns(tmp_path):
    steps = [{"derive": {"late": "delay > 15", "late_hour": "where(late, hour, 0)"}},
             {"rename": {"delay": "arr_delay"}}]  # fmt: skip
    plan, table, _ = run(tmp_path, steps, target="late")
    assert table["late"].to_pylist() == [False, True, False, True]  # no target: the row goes
    assert plan.lineage == {
        "late": {"expression": "delay > 15", "derived_from": ["arr_delay"]},
        "late_hour": {"expression": "where(late, hour, 0)",
                      "derived_from": ["arr_delay", "hour", "late"]},
    }  # fmt: skip
    assert plan.origin["late"] == "derived"


def test_target_rows_without_a_value_are_counted(tmp_path):
    _, table, outcome = run(tmp_path, [])
    assert table.num_rows == 4
    assert outcome.steps[-1] == {"rows_in": 5, "rows_out": 4}


@pytest.mark.parametrize("keep, ids", [("first", [1, 2, 4]), ("last", [3, 4, 5])])
def test_dedupe_keeps_the_first_or_last_in_input_order(tmp_path, keep, ids):
    steps = [{"dedupe": {"on": ["carrier"], "keep": keep}}]
    _, table, outcome = run(tmp_path, steps, target="id")
    assert table["id"].to_pylist() == ids
    assert "__order" not in table.column_names
    assert outcome.steps[0] == {"rows_in": 5, "rows_out": 3}


def test_dedupe_on_every_column(tmp_path):
    _, table, _ = run(tmp_path, [{"select": ["carrier"]}, {"dedupe": {}}], target="carrier")
    assert table["carrier"].to_pylist() == ["UA", "AA", "ZZ"]


def test_cast_error_names_step_and_column(tmp_path):
    with pytest.raises(BadInput, match="step 1 cast: column 'carrier': 5 values do not parse"):
        run(tmp_path, [{"cast": {"columns": {"carrier": "int64"}}}], target="id")


@pytest.mark.parametrize("policy, rows", [("null", 5), ("drop", 1)])
def test_cast_with_a_policy_counts_what_did_not_parse(tmp_path, policy, rows):
    steps = [{"cast": {"columns": {"tail": "int64"}, "on_error": policy}}]
    _, table, outcome = run(tmp_path, steps, target="id")
    assert table.schema.field("tail").type == pa.int64()
    assert outcome.steps[0]["bad_values.tail"] == 4  # the empty one is missing, not bad
    assert outcome.steps[0]["rows_out"] == rows


def test_a_file_with_only_a_header_adds_no_rows(tmp_path):
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "a.csv").write_text(FLIGHTS)
    (tmp_path / "more" / "b.csv").write_text(FLIGHTS.splitlines()[0] + "\n")
    spec = validate_spec({"name": "t", "target": "id",
                          "etl": {"sources": {"f": {"uri": "more/*.csv"}}}})  # fmt: skip
    files = {"f": resolve_files("f", spec.etl.sources["f"], f"file://{tmp_path}")}
    table, outcome = engine_pandas.run(build_plan(spec, files))
    assert table.num_rows == 5 and outcome.rows_read == 5


def test_sampling_picks_the_same_rows_every_time(tmp_path):
    first = run(tmp_path, [], target="id", sample=3)[1]
    again = run(tmp_path, [], target="id", sample=3)[1]
    other = run(tmp_path, [], target="id", sample=3, seed=7)[1]
    assert first.num_rows == 3 and first.equals(again)
    assert first["id"].to_pylist() == sorted(first["id"].to_pylist())  # input order kept
    assert other.num_rows == 3
