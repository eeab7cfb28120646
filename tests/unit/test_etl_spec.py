"""The `etl:` section of the spec: steps, types, rules; errors that name the key and line."""

from __future__ import annotations

import textwrap

import pytest

from mlbatch.errors import BadInput
from mlbatch.spec import load_spec, validate_spec
from mlbatch.spec.etl import ColumnType, EtlSpec

BASE = {"name": "demo", "target": "y"}


def etl(**section) -> EtlSpec:
    return validate_spec({**BASE, "etl": {"sources": {"a": {"uri": "a.csv"}}, **section}}).etl


def error(**section) -> str:
    with pytest.raises(BadInput) as caught:
        etl(**section)
    return str(caught.value)


def test_steps_keep_their_order_and_kind():
    spec = etl(
        sources={"a": {"uri": "a.csv"}, "b": {"uri": "b.csv"}},
        steps=[
            {"join": {"source": "b", "on": ["k"], "how": "inner"}},
            {"filter": "x > 1"},
            {"derive": {"y": "x * 2"}},
            {"dedupe": {"on": ["k"], "keep": "last"}},
            {"cast": {"columns": {"x": "float64"}, "on_error": "null"}},
            {"select": ["k", "y"]},
            {"rename": {"y": "z"}},
            {"drop": ["z"]},
        ],
    )
    steps = spec.transform_steps()
    assert [s.kind for s in steps] == [
        "join", "filter", "derive", "dedupe", "cast", "select", "rename", "drop"
    ]  # fmt: skip
    assert steps[0].join.how == "inner" and steps[3].dedupe.keep == "last"
    assert steps[4].cast.columns["x"] == ColumnType(type="float64")


def test_a_step_serialises_as_its_one_key():
    spec = etl(steps=[{"filter": "x > 1"}])
    dumped = spec.model_dump(mode="json")
    assert dumped["steps"] == [{"filter": "x > 1"}]
    assert EtlSpec.model_validate(dumped).steps[0].filter == "x > 1"


def test_shorthand_keys_expand_to_steps_in_the_old_order():
    spec = etl(
        sources={"a": {"uri": "a.csv"}, "b": {"uri": "b.csv"}},
        joins=[{"source": "b", "on": ["k"]}],
        parse_dates=["t"],
        derive={"y": "x > 1"},
        filter=["x.notna()"],
        drop=["x"],
    )
    steps = spec.transform_steps()
    assert [s.kind for s in steps] == ["join", "cast", "derive", "filter", "drop"]
    assert steps[1].cast.columns["t"] == ColumnType(type="timestamp", timezone="UTC")


def test_steps_and_shorthand_do_not_mix():
    assert "use steps or the shorthand keys (derive), not both" in error(
        steps=[{"filter": "x > 1"}], derive={"y": "x"}
    )


@pytest.mark.parametrize(
    "step, message",
    [
        ({"joyn": {"source": "a", "on": ["k"]}}, "etl.steps.0.joyn: unknown key"),
        ({"filter": "x", "drop": ["y"]}, "a step has exactly one key"),
        ({"join": {"source": "nope", "on": ["k"]}}, "source 'nope' is not one of the sources"),
        ({"join": {"source": "a", "on": ["k"], "right_on": ["a", "b"]}}, "right_on must name"),
        ({"cast": {"columns": {"x": "int65"}}}, "etl.steps.0.cast.columns.x.type"),
        ({"dedupe": {"keep": "middle"}}, "etl.steps.0.dedupe.keep"),
    ],
)
def test_bad_steps_are_named(step, message):
    assert message in error(steps=[step])


def test_column_types_and_zones():
    stamp = {"type": "timestamp", "format": "%d/%m/%Y %H:%M", "timezone": "Europe/Oslo"}
    columns = {"n": "int32", "t": stamp}
    spec = etl(sources={"a": {"uri": "a.csv", "columns": columns, "on_error": "drop"}})
    columns = spec.sources["a"].columns
    assert columns["n"].type == "int32" and columns["t"].timezone == "Europe/Oslo"
    assert "unknown timezone 'Mars/Base'" in error(
        sources={
            "a": {"uri": "a", "columns": {"t": {"type": "timestamp", "timezone": "Mars/Base"}}}
        }
    )
    assert "format applies to date and timestamp" in error(
        sources={"a": {"uri": "a", "columns": {"n": {"type": "int64", "format": "%Y"}}}}
    )


@pytest.mark.parametrize(
    "rule, message",
    [
        ({"rule": "rnge", "column": "x"}, "does not match any of the expected tags"),
        ({"rule": "range", "column": "x"}, "a range rule needs min, max or both"),
        ({"rule": "allowed", "column": "x"}, "needs either values or source"),
        ({"rule": "allowed", "column": "x", "source": "zz"}, "source 'zz' is not one of"),
        ({"rule": "not_null", "columns": ["x"], "severity": "fatal"}, "severity"),
        ({"rule": "row_count", "min": -1}, "row_count.min"),
    ],
)
def test_bad_rules_are_named(rule, message):
    assert message in error(validation=[rule])


def test_rules_parse():
    rules = [
        {"rule": "required", "columns": ["x"]},
        {"rule": "type", "columns": {"x": "float64"}},
        {"rule": "not_null", "columns": ["x"], "severity": "warn"},
        {"rule": "range", "column": "x", "min": 0},
        {"rule": "allowed", "column": "c", "values": ["a"]},
        {"rule": "unique", "columns": ["k"]},
        {"rule": "row_count", "min": 1, "max": 10},
    ]
    spec = etl(validation=rules)
    assert [r.rule for r in spec.validation] == [
        "required", "type", "not_null", "range", "allowed", "unique", "row_count"
    ]  # fmt: skip
    assert spec.validation[2].severity == "warn" and spec.validation[0].severity == "error"


def test_error_names_the_line(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent("""\
        name: demo
        target: y
        etl:
          sources:
            a: {uri: a.csv}
          steps:
            - filter: x > 1
            - dedup: {on: [k]}
        """))  # fmt: skip
    with pytest.raises(BadInput) as caught:
        load_spec(path)
    assert str(caught.value) == f"{path}:8: etl.steps.1.dedup: unknown key"


def test_engine_and_output_settings():
    spec = etl(engine="dask", dask={"workers": 3, "partition_mb": 16},
               output={"partition_by": ["month"]})  # fmt: skip
    assert spec.engine == "dask" and spec.dask.workers == 3 and spec.dask.partition_mb == 16
    assert spec.output.partition_by == ["month"]
    assert "etl.engine" in error(engine="spark")
