"""Sources in the formats people have: CSV dialects, .xlsx and JSON Lines read into the same
rows as a plain CSV, whole or in blocks; the spec keys that set what is otherwise sniffed."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from pydantic import ValidationError

from mlbatch.controller.quickstart import spec_for_data
from mlbatch.errors import BadInput
from mlbatch.scoring import read_rows
from mlbatch.spec.etl import Source
from mlbatch_jobs.etl.files import resolve_files
from mlbatch_jobs.etl.plan import read_whole
from mlbatch_jobs.etl.reading import SourceReader

FRAME = pd.DataFrame({
    "id": [1, 2, 3, 4],
    "price": [1.5, None, -2.25, 1000.125],
    "city": ["Köln", None, "Zürich, CH", "São Paulo"],
    "note": ["first line\nsecond line", "plain", "a; b", 'says "hi"'],
    "qty": pd.array([3, 4, None, 6], dtype="Int64"),
})  # fmt: skip
ROWS = [
    {k: (None if pd.isna(v) else int(v) if k in ("id", "qty") else v) for k, v in row.items()}
    for row in FRAME.to_dict("records")
]
WRITERS = {
    "plain.csv": lambda path: FRAME.to_csv(path, index=False),
    "european.csv": lambda path: FRAME.to_csv(
        path, sep=";", decimal=",", index=False, encoding="cp1252"
    ),
    "bom.tsv": lambda path: FRAME.to_csv(path, sep="\t", index=False, encoding="utf-8-sig"),
    "pipes.csv.gz": lambda path: path.write_bytes(
        gzip.compress(FRAME.to_csv(sep="|", index=False).encode())
    ),
    "book.xlsx": lambda path: FRAME.to_excel(path, index=False, sheet_name="sales"),
    "lines.jsonl": lambda path: path.write_text("".join(json.dumps(r) + "\n" for r in ROWS)),
}


def reader(tmp_path: Path, uri: str, **source) -> SourceReader:
    spec = Source(uri=uri, **source)
    return SourceReader.open("sales", spec, resolve_files("sales", spec, f"file://{tmp_path}"))


def read(tmp_path: Path, uri: str, **source) -> pa.Table:
    return read_whole(reader(tmp_path, uri, **source))[0]


@pytest.mark.parametrize("name", list(WRITERS))
def test_every_format_and_dialect_reads_the_same_rows(tmp_path: Path, name: str):
    WRITERS[name](tmp_path / name)
    table = read(tmp_path, name)
    assert table.to_pylist() == ROWS
    assert [str(t) for t in table.schema.types] == ["int64", "double", "string", "string", "int64"]


def test_the_sniffed_dialect(tmp_path: Path):
    WRITERS["european.csv"](tmp_path / "european.csv")
    dialect = reader(tmp_path, "european.csv").dialect
    assert (dialect.delimiter, dialect.decimal, dialect.encoding) == (";", ",", "cp1252")
    assert dialect.quoted_newlines


def test_blocks_of_a_european_csv_read_the_same_rows(tmp_path: Path):
    """cp1252 and decimal commas in byte-range blocks (the Dask engine's reads); a quoted
    newline in the sample makes each file one block, as a line end may be inside a quote."""
    frame = pd.concat([FRAME.assign(note="plain")] * 200, ignore_index=True)
    frame.to_csv(tmp_path / "many.csv", sep=";", decimal=",", index=False, encoding="cp1252")
    split = reader(tmp_path, "many.csv")
    blocks = split.blocks(1024)
    assert len(blocks) > 5 and not split.dialect.quoted_newlines
    parts = pa.concat_tables([split.read_block(block)[0] for block in blocks])
    assert parts.equals(read(tmp_path, "many.csv"))
    assert parts.num_rows == 800
    assert parts["price"].to_pylist()[:4] == [row["price"] for row in ROWS]
    WRITERS["european.csv"](tmp_path / "quoted.csv")
    assert len(reader(tmp_path, "quoted.csv").blocks(16)) == 1


def test_declared_keys_replace_the_sniffing(tmp_path: Path):
    # Pipes, decimal commas and latin-1, declared: a value that does not parse under
    # on_error: null is counted, the others keep their decimal commas' values.
    text = "id|price|city\n1|1,5|Köln\n2|oops|Åre\n3|2,75|\n"
    (tmp_path / "odd.txt").write_bytes(text.encode("latin-1"))
    source = {"format": "csv", "delimiter": "|", "decimal": ",", "encoding": "latin-1",
              "columns": {"price": "float64"}, "on_error": "null"}  # fmt: skip
    table, coercion = read_whole(reader(tmp_path, "odd.txt", **source))
    assert table["price"].to_pylist() == [1.5, None, 2.75]
    assert table["city"].to_pylist() == ["Köln", "Åre", None]
    assert coercion.bad == {"price": 1}


def test_a_sheet_by_name_or_position(tmp_path: Path):
    with pd.ExcelWriter(tmp_path / "book.xlsx") as writer:
        pd.DataFrame({"a": [1]}).to_excel(writer, sheet_name="notes", index=False)
        FRAME.to_excel(writer, sheet_name="sales", index=False)
    assert read(tmp_path, "book.xlsx", sheet="sales").to_pylist() == ROWS
    assert read(tmp_path, "book.xlsx", sheet=1).to_pylist() == ROWS
    assert read(tmp_path, "book.xlsx").to_pylist() == [{"a": 1}]  # the first sheet
    with pytest.raises(BadInput, match=r"book.xlsx: Worksheet named 'sale' not found \(sheets: "
                                       r"notes, sales\)"):  # fmt: skip
        read(tmp_path, "book.xlsx", sheet="sale")


def test_a_sheet_column_of_mixed_kinds_is_text(tmp_path: Path):
    pd.DataFrame({"code": [12, "n/a", 7.5], "y": [0, 1, 0]}).to_excel(
        tmp_path / "mixed.xlsx", index=False
    )
    assert read(tmp_path, "mixed.xlsx")["code"].to_pylist() == ["12", "n/a", "7.5"]


def test_undetectable_csv_names_the_file_what_was_tried_and_the_keys(tmp_path: Path):
    (tmp_path / "broken.csv").write_text("a;b;c\n1;2\n3;4;5;6\n")
    with pytest.raises(BadInput) as caught:
        reader(tmp_path, "broken.csv")
    message = str(caught.value)
    assert message.startswith(f"source sales: file file://{tmp_path}/broken.csv: cannot tell")
    assert "tried ',': one column; ';': 3 columns in the header, 2 on line 2" in message
    assert "set etl.sources.sales.delimiter (or .encoding, .format)" in message


def test_a_malformed_line_past_the_sample_names_the_sniffed_separator(tmp_path: Path):
    (tmp_path / "late.csv").write_text("a;b\n" + "1;2\n" * 300_000 + "3;4;5\n")  # 1.2 MB
    with pytest.raises(BadInput) as caught:
        read(tmp_path, "late.csv")
    assert str(caught.value).endswith(
        "malformed CSV, line 300002: expected 2 columns, got 3 (separator ';', sniffed; "
        "etl.sources.sales.delimiter and .quoted_newlines set the dialect)"
    )


def test_quoted_newlines_past_the_sample_are_declared(tmp_path: Path):
    (tmp_path / "late.csv").write_text("id,note\n" + "1,plain\n" * 150_000 + '2,"two\nlines"\n')
    assert not reader(tmp_path, "late.csv").dialect.quoted_newlines  # not in the first MiB
    declared = reader(tmp_path, "late.csv", quoted_newlines=True)
    assert declared.dialect.quoted_newlines and len(declared.blocks(1 << 16)) == 1
    assert read_whole(declared)[0]["note"][-1].as_py() == "two\nlines"


@pytest.mark.parametrize(
    "keys, error",
    [
        ({"encoding": "utf-16"}, "encoding 'utf-16' is not ASCII-compatible"),
        ({"encoding": "klingon"}, "unknown encoding 'klingon'"),
        ({"format": "parquet", "delimiter": ";"}, "delimiter applies to CSV sources, not parquet"),
        ({"format": "parquet", "decimal": ","}, "decimal applies to CSV sources, not parquet"),
        ({"format": "jsonl", "encoding": "cp1252"}, "encoding applies to CSV sources, not jsonl"),
        ({"format": "xlsx", "quoted_newlines": True}, "quoted_newlines applies to CSV sources"),
        ({"format": "csv", "sheet": "x"}, "sheet applies to xlsx sources, not csv"),
        ({"delimiter": ",", "decimal": ","}, "delimiter and decimal are both ','"),
        ({"sheet": -1}, "greater than or equal to 0"),
        ({"decimal": ";"}, "Input should be '.' or ','"),
    ],
)
def test_spec_keys_are_checked(keys: dict, error: str):
    with pytest.raises(ValidationError, match=error):
        Source(uri="x", **keys)


def test_specs_from_before_the_dialect_keys_still_load():
    """They hold `delimiter: ","` (the old default) for every source."""
    assert Source(uri="x.parquet", format="parquet", delimiter=",").keys_not_for("parquet") == []


def test_an_encoding_is_kept_by_its_python_name():
    assert Source(uri="x", encoding="Latin-1").encoding == "iso8859-1"


def test_keys_must_fit_the_files_format(tmp_path: Path):
    WRITERS["book.xlsx"](tmp_path / "book.xlsx")
    WRITERS["plain.csv"](tmp_path / "plain.csv")
    with pytest.raises(BadInput, match="source s: delimiter applies to CSV files; .*book.xlsx is "
                                       "xlsx"):  # fmt: skip
        resolve_files("s", Source(uri="book.xlsx", delimiter=";"), f"file://{tmp_path}")
    with pytest.raises(BadInput, match="source s: sheet applies to xlsx files; .*plain.csv is csv"):
        resolve_files("s", Source(uri="plain.csv", sheet=0), f"file://{tmp_path}")


@pytest.mark.parametrize("name", ["european.csv", "book.xlsx", "lines.jsonl"])
def test_data_reads_every_format_for_its_task(tmp_path: Path, name: str):
    WRITERS[name](tmp_path / name)
    spec = spec_for_data(str(tmp_path / name), "price")
    assert spec.task == "regression" and spec.etl.sources["data"].uri == f"file://{tmp_path}/{name}"


def test_data_takes_the_source_keys_from_overrides(tmp_path: Path):
    (tmp_path / "both.csv").write_text("a,b;y\n1,2;0\n3,4;1\n5,6;0\n")
    with pytest.raises(BadInput, match=r"several fit .*set etl.sources.data.delimiter$"):
        spec_for_data(str(tmp_path / "both.csv"), "y")
    spec = spec_for_data(
        str(tmp_path / "both.csv"), "y", overrides=["etl.sources.data.delimiter=;"]
    )
    assert spec.task == "binary" and spec.etl.sources["data"].delimiter == ";"


@pytest.mark.parametrize("name", ["european.csv", "bom.tsv", "book.xlsx", "lines.jsonl"])
def test_rows_to_score_are_read_in_every_format(tmp_path: Path, name: str):
    WRITERS[name](tmp_path / name)
    rows = read_rows(f"file://{tmp_path}/{name}")
    assert list(rows.columns) == list(FRAME.columns)
    assert rows["price"].tolist()[:1] == [1.5] and rows["city"].tolist()[3] == "São Paulo"
