"""Spec validation: every error is one line naming the key and where it is (file:line or
the --set that caused it), as BadInput (exit 2)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mlbatch.errors import BadInput, ExitCode
from mlbatch.spec import PipelineSpec, apply_overrides, load_spec, validate_spec

BASE = textwrap.dedent(
    """\
    name: demo
    target: delayed
    task: binary
    etl:
      sources:
        flights: {uri: raw/flights.csv}
        weather: {uri: raw/weather.csv}
      joins:
        - source: weather
          on: [origin, time_hour]
    features:
      split: {train: 0.7, valid: 0.2, test: 0.1}
    train:
      models:
        - xgboost
        - lightgbm
      num_samples: 4
    """
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def line_of(text: str, needle: str) -> int:
    """1-based number of the first line containing needle."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def error_of(path: Path, overrides: list[str] = ()) -> str:
    with pytest.raises(BadInput) as caught:
        load_spec(path, list(overrides))
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    message = str(caught.value)
    assert "\n" not in message, message  # one line
    return message


def test_base_spec_is_valid(tmp_path):
    spec = load_spec(write(tmp_path, BASE))
    assert isinstance(spec, PipelineSpec)
    assert spec.train.models == ["xgboost", "lightgbm"]
    assert spec.train.num_samples == 4
    # YAML 1.1 would read `on:` as the boolean True; the spec loader keeps it a key
    assert spec.etl.joins[0].on == ["origin", "time_hour"]
    assert spec.etl.main_source == "flights"


def test_example_spec_is_valid():
    example = Path(__file__).resolve().parents[2] / "examples" / "flights.yaml"
    if not example.exists():
        pytest.skip("examples/flights.yaml not written yet")
    assert load_spec(example).target


def test_unknown_top_level_key(tmp_path):
    text = BASE + "trian:\n  num_samples: 3\n"
    path = write(tmp_path, text)
    assert error_of(path) == f"{path}:{line_of(text, 'trian:')}: trian: unknown key"


def test_unknown_nested_key(tmp_path):
    text = BASE.replace("  models:", "  modles:")
    path = write(tmp_path, text)
    assert error_of(path) == f"{path}:{line_of(text, 'modles:')}: train.modles: unknown key"


def test_unknown_key_in_a_list_item(tmp_path):
    text = BASE.replace("- source: weather", "- sorce: weather")
    path = write(tmp_path, text)
    with pytest.raises(BadInput) as caught:
        load_spec(path)
    # a misspelt required key is two errors, one line each
    line = line_of(text, "sorce:")
    assert str(caught.value).splitlines() == [
        f"{path}:{line}: etl.joins.0.source: required key is missing",
        f"{path}:{line}: etl.joins.0.sorce: unknown key",
    ]


def test_wrong_type(tmp_path):
    text = BASE.replace("num_samples: 4", "num_samples: many")
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(f"{path}:{line_of(text, 'num_samples')}: train.num_samples: ")
    assert "integer" in message


def test_wrong_choice_in_a_list(tmp_path):
    text = BASE.replace("- lightgbm", "- catboost")
    path = write(tmp_path, text)
    message = error_of(path)
    assert "train.models.1" in message and "xgboost" in message
    assert message.startswith(f"{path}:")


def test_wrong_choice_in_a_block_list_names_its_line(tmp_path):
    text = BASE.replace("- lightgbm", "- catboost")
    path = write(tmp_path, text)
    assert error_of(path).startswith(f"{path}:{line_of(text, 'catboost')}: train.models.1: ")


def test_missing_required_field(tmp_path):
    path = write(tmp_path, BASE.replace("target: delayed\n", ""))
    message = error_of(path)
    assert message.startswith(f"{path}:")
    assert message.endswith("target: required key is missing")


def test_missing_nested_required_field(tmp_path):
    text = BASE.replace("    flights: {uri: raw/flights.csv}\n", "    flights: {}\n")
    path = write(tmp_path, text)
    message = error_of(path)
    assert message == (
        f"{path}:{line_of(text, 'flights: {}')}: etl.sources.flights.uri: required key is missing"
    )


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("name: demo\ntarget: [unclosed\netl: {}\n", 3),
        ("name: demo\n  target: bad-indent\n", 2),
        ("name: demo\netl:\n\t- tab\n", 3),
        ("name: demo\nname: [a, b\n", 3),
    ],
)
def test_bad_yaml_syntax(tmp_path, text, line):
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(f"{path}:{line}: not valid YAML: ")


@pytest.mark.parametrize("text", ["", "- a list\n- not a mapping\n", "just a string\n"])
def test_not_a_mapping(tmp_path, text):
    assert "a spec is a YAML mapping" in error_of(write(tmp_path, text))


def test_missing_file(tmp_path):
    assert error_of(tmp_path / "nope.yaml") == (
        f"cannot read spec {tmp_path / 'nope.yaml'}: No such file or directory"
    )


def test_bad_name(tmp_path):
    text = BASE.replace("name: demo", "name: Demo_Run")
    path = write(tmp_path, text)
    assert error_of(path).startswith(f"{path}:1: name: ")


def test_split_fractions_must_sum_to_one(tmp_path):
    text = BASE.replace("train: 0.7,", "train: 0.6,")
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(f"{path}:{line_of(text, 'split:')}: features.split: ")
    assert "add up to 1" in message


def test_join_source_must_be_a_source(tmp_path):
    text = BASE.replace("- source: weather", "- source: planes")
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(f"{path}:{line_of(text, 'etl:')}: etl: ")
    assert "'planes'" in message and "flights" in message and "weather" in message


def test_main_must_be_a_source(tmp_path):
    text = BASE.replace("etl:\n", "etl:\n  main: nope\n")
    assert "main 'nope' is not one of the sources" in error_of(write(tmp_path, text))


# --set overrides -----------------------------------------------------------------------


def test_override_changes_values(tmp_path):
    path = write(tmp_path, BASE)
    spec = load_spec(
        path,
        [
            "train.num_samples=2",
            "train.models=[lightgbm]",
            "features.split.seed=7",
            "execution.retries=0",  # a section the file does not have
            "etl.sources.flights.uri=s3://bucket/flights.csv",
            "description=a run = a description",
        ],
    )
    assert spec.train.num_samples == 2
    assert spec.train.models == ["lightgbm"]
    assert spec.features.split.seed == 7
    assert spec.execution.retries == 0
    assert spec.etl.sources["flights"].uri == "s3://bucket/flights.csv"
    assert spec.description == "a run = a description"


def test_override_values_are_yaml_1_2(tmp_path):
    spec = load_spec(write(tmp_path, BASE), ["target=no", "features.split.stratify=false"])
    assert spec.target == "no"  # a string, not YAML 1.1's False
    assert spec.features.split.stratify is False


def test_override_list_index(tmp_path):
    spec = load_spec(write(tmp_path, BASE), ["train.models.1=xgboost", "train.models.0=lightgbm"])
    assert spec.train.models == ["lightgbm", "xgboost"]
    spec = load_spec(write(tmp_path, BASE), ["etl.joins.0.how=inner"])
    assert spec.etl.joins[0].how == "inner"


@pytest.mark.parametrize("override", ["train.models.2=xgboost", "train.models.x=xgboost"])
def test_override_bad_list_index(tmp_path, override):
    message = error_of(write(tmp_path, BASE), [override])
    assert message.startswith(f"--set {override!r}: ")
    assert "is not an index of a 2-item list" in message


def test_override_does_not_change_the_input():
    data = {"name": "demo", "train": {"num_samples": 4}}
    assert apply_overrides(data, ["train.num_samples=9"])["train"]["num_samples"] == 9
    assert data == {"name": "demo", "train": {"num_samples": 4}}


def test_override_unknown_key_names_the_set(tmp_path):
    message = error_of(write(tmp_path, BASE), ["train.modles=[xgboost]"])
    assert message == "--set train.modles: train.modles: unknown key"


def test_override_unknown_section_names_the_set(tmp_path):
    message = error_of(write(tmp_path, BASE), ["trian.num_samples=3"])
    assert message.startswith("--set trian")
    assert "trian: unknown key" in message


def test_override_wrong_type_names_the_set(tmp_path):
    message = error_of(write(tmp_path, BASE), ["train.num_samples=many"])
    assert message.startswith("--set train.num_samples: train.num_samples: ")


def test_override_wrong_choice_in_list_names_the_set(tmp_path):
    message = error_of(write(tmp_path, BASE), ["train.models.0=catboost"])
    assert message.startswith("--set train.models.0: train.models.0: ")


@pytest.mark.parametrize("override", ["train.num_samples", "=3", ""])
def test_override_malformed(tmp_path, override):
    message = error_of(write(tmp_path, BASE), [override])
    assert message == f"--set {override!r}: expected path.to.key=value"


def test_override_value_not_valid_yaml(tmp_path):
    message = error_of(write(tmp_path, BASE), ["train.models=[xgboost"])
    assert message.startswith("--set 'train.models=[xgboost': not valid YAML")


def test_override_into_a_scalar(tmp_path):
    message = error_of(write(tmp_path, BASE), ["target.column=x"])
    assert message.startswith("--set 'target.column=x': ")


def test_validate_spec_without_a_file():
    message = str(pytest.raises(BadInput, validate_spec, {"name": "demo"}).value)
    assert message.startswith("spec: ")
    assert "target: required key is missing" in message
    assert "etl: required key is missing" in message
