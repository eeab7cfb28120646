"""Which files a source names: one file, a glob, a prefix; formats and compression."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlbatch.errors import BadInput
from mlbatch.raw_tables import detect_format
from mlbatch.spec.etl import Source
from mlbatch_jobs.etl.files import glob_pattern, resolve_files


def files_of(root: Path, uri: str, **source) -> list[str]:
    found = resolve_files("s", Source(uri=uri, **source), f"file://{root}")
    return [f.uri.removeprefix(f"file://{root}/") for f in found]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ("raw/a.csv", "raw/b.csv.gz", "raw/2013/c.csv", "raw/2014/d.csv",
                 "parts/part-0.parquet", "parts/part-1.parquet", "parts/_SUCCESS",
                 "parts/.part-0.parquet.crc", "mixed/x.csv", "mixed/y.parquet"):  # fmt: skip
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x\n1\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/e.csv").write_bytes(b"")
    return tmp_path


def test_one_file(tree: Path):
    assert files_of(tree, "raw/a.csv") == ["raw/a.csv"]
    assert files_of(tree, str(tree / "raw/a.csv")) == ["raw/a.csv"]


def test_globs_stay_in_their_folder_unless_double_star(tree: Path):
    assert files_of(tree, "raw/*.csv*") == ["raw/a.csv", "raw/b.csv.gz"]
    assert files_of(tree, "raw/*/*.csv") == ["raw/2013/c.csv", "raw/2014/d.csv"]
    assert files_of(tree, "raw/**/c.csv") == ["raw/2013/c.csv"]
    assert files_of(tree, "raw/201[3]/?.csv") == ["raw/2013/c.csv"]


def test_a_prefix_skips_markers_and_hidden_files(tree: Path):
    assert files_of(tree, "parts/") == ["parts/part-0.parquet", "parts/part-1.parquet"]
    assert files_of(tree, "parts") == ["parts/part-0.parquet", "parts/part-1.parquet"]


def test_nothing_found_names_the_location(tree: Path):
    with pytest.raises(BadInput, match=r"source s: no file matches .*raw/\*\.json"):
        files_of(tree, "raw/*.json")
    with pytest.raises(BadInput, match="source s: input not found: .*nope.csv"):
        files_of(tree, "nope.csv")


def test_an_empty_file_is_named(tree: Path):
    with pytest.raises(BadInput, match=r"source s: file .*empty/e.csv is empty"):
        files_of(tree, "empty/e.csv")


def test_one_format_per_source(tree: Path):
    with pytest.raises(BadInput, match=r"several formats \(csv, parquet\)"):
        files_of(tree, "mixed/")


@pytest.mark.parametrize(
    "name, declared, expected",
    [
        ("x.csv", "auto", ("csv", None)),
        ("x.CSV.GZ", "auto", ("csv", "gzip")),
        ("x.csv.zip", "auto", ("csv", "zip")),
        ("x.jsonl.bz2", "auto", ("jsonl", "bz2")),
        ("x.ndjson", "auto", ("jsonl", None)),
        ("x.parquet", "auto", ("parquet", None)),
        ("x.XLSX", "auto", ("xlsx", None)),
        ("x.txt.gz", "csv", ("csv", "gzip")),
    ],
)
def test_formats_from_names(name, declared, expected):
    assert detect_format(f"file:///d/{name}", declared) == expected


def test_unknown_formats_ask_for_one():
    with pytest.raises(BadInput, match="set format: csv, parquet, jsonl or xlsx"):
        detect_format("file:///d/x.txt")


def test_glob_pattern():
    pattern = glob_pattern("s3://b/raw/**/*.csv")
    assert pattern.match("s3://b/raw/x.csv") and pattern.match("s3://b/raw/a/b/x.csv")
    assert not pattern.match("s3://b/raw/x.csv.gz")
    assert glob_pattern("f/[!a]*.csv").match("f/b1.csv")
    assert not glob_pattern("f/[!a]*.csv").match("f/a1.csv")
