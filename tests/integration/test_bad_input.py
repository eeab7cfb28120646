"""A bad spec, a missing input and a missing target column: one line, exit 2, nothing committed."""

from __future__ import annotations

from pathlib import Path

from pipeline_checks import REPO, mlbatch

from mlbatch import runs, storage


def _committed(root: str) -> list[str]:
    return [u for u in storage.list_uris(runs.runs_prefix(root)) if u.endswith("_manifest.json")]


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_unknown_key_in_spec(tmp_path: Path, file_storage: str):
    spec = tmp_path / "spec.yaml"
    text = (REPO / "examples/flights.yaml").read_text().replace("num_samples:", "num_sample:")
    spec.write_text(text)
    line_number = next(i for i, line in enumerate(text.splitlines(), 1) if "num_sample:" in line)
    result = mlbatch("run", str(spec), "--storage", file_storage)
    assert result.returncode == 2
    message = _one_error_line(result.stderr)
    assert f"{spec}:{line_number}: train.num_sample: unknown key" in message
    assert runs.list_run_ids(file_storage) == []


def test_bad_override_names_the_key(file_storage: str):
    result = mlbatch(
        "run", str(REPO / "examples/flights.yaml"), "--storage", file_storage,
        "--set", "train.num_samples=many",
    )  # fmt: skip
    assert result.returncode == 2
    assert "--set train.num_samples" in _one_error_line(result.stderr)
    assert runs.list_run_ids(file_storage) == []


def test_missing_input_file(file_storage: str):
    # No demo-data: the raw CSVs the spec names do not exist.
    result = mlbatch("run", str(REPO / "examples/flights.yaml"), "--storage", file_storage)
    assert result.returncode == 2
    message = _one_error_line(result.stderr)
    assert "input not found" in message and "raw/flights/flights.csv" in message
    assert runs.list_run_ids(file_storage) == []


def test_missing_data_file(tmp_path: Path, file_storage: str):
    result = mlbatch("run", "--data", str(tmp_path / "nope.csv"), "--target", "y",
                     "--storage", file_storage)  # fmt: skip
    assert result.returncode == 2
    assert "nope.csv" in _one_error_line(result.stderr)


def test_missing_target_column_with_data(tmp_path: Path, file_storage: str):
    data = tmp_path / "table.csv"
    data.write_text("a,b,label\n1,x,0\n2,y,1\n")
    result = mlbatch("run", "--data", str(data), "--target", "lable", "--storage", file_storage)
    assert result.returncode == 2
    message = _one_error_line(result.stderr)
    assert "'lable'" in message and "a, b, label" in message
    assert runs.list_run_ids(file_storage) == []


def test_missing_target_column_in_spec_fails_etl_without_commit(tmp_path: Path, file_storage: str):
    """A target the ETL cannot find: etl exits 2, the run fails with 2, no manifest."""
    assert mlbatch("demo-data", "--storage", file_storage).returncode == 0
    result = mlbatch(
        "run", str(REPO / "examples/flights.yaml"), "--storage", file_storage,
        "--set", "target=delayd", "--set", "etl.sample_rows=2000",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "target column 'delayd' is not in the table" in result.stdout + result.stderr
    assert _committed(file_storage) == []
    (run_id,) = runs.list_run_ids(file_storage)
    state = runs.read_state(runs.RunLayout(file_storage, run_id))
    assert state["state"] == "failed" and state["stages"]["etl"]["state"] == "FAILED"
    assert len(state["stages"]["etl"]["attempts"]) == 1  # exit 2 is never retried
