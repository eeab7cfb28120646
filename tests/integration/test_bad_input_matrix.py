"""Bad specs, data and command lines: exit 2 (or 3), a message naming the problem, nothing
committed. Each case is what someone will type or feed us one day."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pipeline_checks import REPO, mlbatch

from mlbatch import runs, storage

SPEC = (REPO / "examples/flights.yaml").read_text()


def _spec(tmp: Path, text: str) -> list[str]:
    path = tmp / "spec.yaml"
    path.write_bytes(text.encode("latin-1") if "\xe9" in text else text.encode())
    return ["run", str(path)]


def _edited(old: str, new: str) -> str:
    """The demo spec with one edit; the edit must apply, or the case tests nothing."""
    assert re.search(old, SPEC, flags=re.M), f"examples/flights.yaml no longer has {old!r}"
    return re.sub(old, new, SPEC, count=1, flags=re.M)


def _data(tmp: Path, name: str, content: bytes, target: str = "y") -> list[str]:
    path = tmp / name
    path.write_bytes(content)
    return ["run", "--data", str(path), "--target", target]


many_labels = b"x,y\n" + b"".join(f"{i},label{i}\n".encode() for i in range(400))
CASES = {
    "malformed yaml": (lambda t: _spec(t, "name: [unclosed\n"), "not valid YAML"),
    "spec is a list": (lambda t: _spec(t, "- a\n- b\n"), "a spec is a YAML mapping"),
    "unknown top-level key": (lambda t: _spec(t, SPEC + "trian: {}\n"), "trian: unknown key"),
    "unknown nested key": (
        lambda t: _spec(t, _edited(r"^  num_samples:", "  num_sample:")),
        "train.num_sample: unknown key",
    ),
    "wrong type": (
        lambda t: _spec(t, _edited(r"num_samples: \d+", "num_samples: six")),
        "train.num_samples",
    ),
    "missing target key": (
        lambda t: _spec(t, _edited(r"^target: delayed.*\n", "")),
        "target: required key is missing",
    ),
    "bad name": (
        lambda t: _spec(t, _edited(r"^name: flights-delay", "name: Flights Delay")),
        "name",
    ),
    "fractions not summing to 1": (
        lambda t: _spec(t, _edited(r"test: 0\.1\b", "test: 0.3")),
        "must add up to 1",
    ),
    "join of an unknown source": (
        lambda t: _spec(t, _edited(r"source: planes", "source: plains")),
        "'plains' is not one of the sources",
    ),
    "unknown model family": (
        lambda t: _spec(t, _edited(r"models: \[[^\]]*\]", "models: [catboost]")),
        "train.models.0",
    ),
    "spec file missing": (lambda t: ["run", str(t / "nope.yaml")], "cannot read spec"),
    "spec not utf-8": (lambda t: _spec(t, "name: caf\xe9\n"), "spec"),
    "data file missing": (
        lambda t: ["run", "--data", str(t / "none.csv"), "--target", "y"],
        "none.csv",
    ),
    "empty data file": (lambda t: _data(t, "empty.csv", b""), "empty.csv"),
    "header only": (lambda t: _data(t, "header.csv", b"x,y\n"), "no values"),
    # cp1252 text is read (docs/etl.md); bytes that are neither it nor UTF-8 are not.
    "undecodable data": (
        lambda t: _data(t, "bytes.csv", b"x,y\n\x81\x8d,1\nb,0\n"),
        "tried utf-8, cp1252",
    ),
    "target column missing": (lambda t: _data(t, "t.csv", b"x,z\n1,2\n3,4\n"), "'y' is not in"),
    "one-class target": (lambda t: _data(t, "one.csv", b"x,y\n1,a\n2,a\n3,a\n"), "single value"),
    "all-null target": (lambda t: _data(t, "null.csv", b"x,y\n1,\n2,NA\n"), "no values"),
    "duplicate column names": (
        lambda t: _data(t, "dup.csv", b"x,x,y\n1,2,0\n3,4,1\n"),
        "duplicate column names: x",
    ),
    "huge category count target": (lambda t: _data(t, "many.csv", many_labels), "distinct labels"),
    "regression on text": (
        lambda t: _data(t, "text.csv", b"x,y\n1,a\n2,b\n3,c\n") + ["--task", "regression"],
        "not numeric",
    ),
    "spec and --data together": (
        lambda t: ["run", "x.yaml", "--data", "d.csv", "--target", "y"],
        "not both",
    ),
    "--data without --target": (lambda t: ["run", "--data", "d.csv"], "--target"),
    "bad --set syntax": (
        lambda t: _spec(t, SPEC) + ["--set", "train.num_samples"],
        "path.to.key=value",
    ),
    "unknown executor": (lambda t: _spec(t, SPEC) + ["--executor", "slurm"], "unknown executor"),
    "unknown --force stage": (
        lambda t: _data(t, "ok.csv", b"x,y\n1,0\n2,1\n3,0\n4,1\n") + ["--force", "training"],
        "not a stage",
    ),
    "run id with ../": (lambda t: ["status", "../../etc"], "is not of the form"),
    "stage name with ../": (lambda t: ["logs", "20260101-000000-abcdef", "../x"], "unknown stage"),
    "resume of a run that does not exist": (
        lambda t: ["resume", "20260101-000000-abcdef"],
        "no run at",
    ),
    "unsupported storage scheme": (
        lambda t: _spec(t, SPEC) + ["--storage", "gs://bucket"],
        "use file:// or s3://",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case: str, tmp_path: Path, file_storage: str):
    build, expected = CASES[case]
    args = build(tmp_path)
    if "--storage" not in args:
        args += ["--storage", file_storage]
    result = mlbatch(*args, cwd=tmp_path)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    message = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert message and expected in " ".join(message), result.stderr
    committed = [u for u in storage.list_uris(file_storage) if u.endswith("_manifest.json")]
    assert committed == [] and runs.list_run_ids(file_storage) == []


COMMANDS = ["run", "resume", "render", "demo-data", "status", "logs", "runs", "cancel", "gc",
            "compare", "promote", "predict", "models", "models show"]  # fmt: skip


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_every_help_renders(command: str, tmp_path: Path):
    result = mlbatch(*command.split(), "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["runs", "--bogus"], ["bogus"], ["status"], ["run", "a", "b"]])
def test_usage_errors_exit_2_without_a_traceback(args: list[str], tmp_path: Path):
    result = mlbatch(*args, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Error:" in result.stderr and "Traceback" not in result.stderr


def test_a_gate_the_declared_task_lacks_is_refused_before_anything_runs(tmp_path: Path):
    """The demo declares `task: binary`: an RMSE gate cannot apply, so nothing starts."""
    store = tmp_path / "store"
    args = _spec(tmp_path, _edited(r"gates: \[[^\]]*\]", 'gates: ["rmse <= 30"]'))
    result = mlbatch(*args, "--storage", str(store), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "evaluate.gates: rmse <= 30: binary models have no rmse" in result.stderr
    assert not store.exists() or not any(store.rglob("run.json"))
