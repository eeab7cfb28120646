"""Reading sources: each format, declared and inferred types, dates and zones, blocks, and
the errors a bad file gives (naming the file, the line or the column)."""

from __future__ import annotations

import gzip
import json
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import pytest

from mlbatch.errors import BadInput
from mlbatch.spec.etl import Source
from mlbatch_jobs.etl.files import resolve_files
from mlbatch_jobs.etl.plan import read_whole
from mlbatch_jobs.etl.reading import ORDER, SourceReader

CSV = "id,name,score,when\n1,ann,1.5,2013-01-01 05:00:00\n2,bob,NA,2013-06-01 17:30:00\n3,,2,\n"
ROWS = [
    {"id": 1, "name": "ann", "score": 1.5, "when": datetime(2013, 1, 1, 5)},
    {"id": 2, "name": "bob", "score": None, "when": datetime(2013, 6, 1, 17, 30)},
    {"id": 3, "name": None, "score": 2.0, "when": None},
]


def reader(tmp_path: Path, uri: str, **source) -> SourceReader:
    spec = Source(uri=uri, **source)
    return SourceReader.open("s", spec, resolve_files("s", spec, f"file://{tmp_path}"))


def read(tmp_path: Path, uri: str, **source) -> pa.Table:
    return read_whole(reader(tmp_path, uri, **source))[0]


def write_formats(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(CSV)
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(CSV.encode()))
    with zipfile.ZipFile(tmp_path / "t.csv.zip", "w") as archive:
        archive.writestr("t.csv", CSV)
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "t.parquet")
    lines = [json.dumps({**r, "when": r["when"] and r["when"].isoformat(" ")}) for r in ROWS]
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.csv.zip", "t.parquet", "t.jsonl"])
def test_every_format_reads_the_same_rows(tmp_path: Path, name: str):
    write_formats(tmp_path)
    table = read(tmp_path, name, columns={"when": "timestamp"})
    assert table.to_pylist() == ROWS
    assert table.schema.field("id").type == pa.int64()
    assert table.schema.field("when").type == pa.timestamp("us")


def test_declared_types_zones_and_formats(tmp_path: Path):
    (tmp_path / "d.csv").write_text(
        "local,instant,day,n,flag\n"
        "2013-01-01 05:00:00,2013-01-01T10:00:00Z,05/01/2013,1,yes\n"
        "2013-07-01 05:00:00,2013-07-01T09:00:00Z,31/12/2013,2,no\n"
    )
    table = read(tmp_path, "d.csv", columns={
        "local": {"type": "timestamp", "timezone": "America/New_York"},
        "instant": {"type": "timestamp", "timezone": "America/New_York"},
        "day": {"type": "date", "format": "%d/%m/%Y"}, "n": "float32", "flag": "bool",
    })  # fmt: skip
    york = ZoneInfo("America/New_York")
    assert table["local"].to_pylist() == [datetime(2013, 1, 1, 5, tzinfo=york),
                                          datetime(2013, 7, 1, 5, tzinfo=york)]  # fmt: skip
    assert table["instant"].to_pylist() == table["local"].to_pylist()  # the same instants
    assert table["day"].to_pylist() == [date(2013, 1, 5), date(2013, 12, 31)]
    assert table.schema.field("n").type == pa.float32()
    assert table["flag"].to_pylist() == [True, False]


def test_inferred_types(tmp_path: Path):
    (tmp_path / "i.csv").write_text(
        "a,b,c,d\n1,2013-01-01T10:00:00Z,,x\n2,2013-01-02T10:00:00Z,,y\n"
    )
    schema = read(tmp_path, "i.csv").schema
    assert schema.field("a").type == pa.int64()
    assert schema.field("b").type == pa.timestamp("us", tz="UTC")
    assert schema.field("c").type == pa.string()  # all missing: text, not Arrow's null type
    offsets = read(tmp_path, "i.csv", columns={"b": "timestamp"})["b"]
    assert offsets.type == pa.timestamp("us", tz="UTC")
    assert offsets[0].as_py() == datetime(2013, 1, 1, 10, tzinfo=UTC)


def test_blocks_read_the_same_rows_as_the_whole_file(tmp_path: Path):
    lines = [f"{i},name {i},{i * 0.5}" for i in range(5000)]
    (tmp_path / "big.csv").write_text("i,name,x\n" + "\n".join(lines) + "\n")
    source = reader(tmp_path, "big.csv")
    source.with_order = True
    whole = source.read_file(0)[0]
    blocks = source.blocks(1000)  # bytes: lines straddle the block boundaries
    assert len(blocks) > 50
    parts = [source.read_block(block)[0] for block in blocks]
    joined = pa.concat_tables(parts)
    assert joined.drop_columns([ORDER]).equals(whole.drop_columns([ORDER]))
    order = joined[ORDER].to_pylist()
    assert order == sorted(order) and len(set(order)) == len(order)


def test_parquet_blocks_are_row_groups(tmp_path: Path):
    table = pa.table({"i": list(range(1000)), "s": [str(i) for i in range(1000)]})
    pq.write_table(table, tmp_path / "p.parquet", row_group_size=100)
    source = reader(tmp_path, "p.parquet")
    source.with_order = True
    blocks = source.blocks(1)
    assert len(blocks) == 10 and blocks[3].first_row == 300
    parts = pa.concat_tables([source.read_block(b)[0] for b in blocks])
    assert parts["i"].to_pylist() == list(range(1000))
    assert parts[ORDER].to_pylist() == list(range(1000))


def test_a_malformed_line_names_file_and_line(tmp_path: Path):
    rows = [f"{i},{i}" for i in range(200_000)]
    rows[150_000] = "150000,1,extra"  # past the first MiB, which the inference reads
    (tmp_path / "bad.csv").write_text("a,b\n" + "\n".join(rows) + "\n")
    with pytest.raises(BadInput) as caught:
        read(tmp_path, "bad.csv")
    assert "bad.csv: malformed CSV, line 150002: expected 2 columns, got 3" in str(caught.value)
    source = reader(tmp_path, "bad.csv")
    offset = (tmp_path / "bad.csv").read_bytes().index(b"150000,1,extra")
    block = next(b for b in source.blocks(1 << 16) if b.start <= offset < b.stop)
    with pytest.raises(BadInput, match="line 150002: expected 2 columns, got 3"):
        source.read_block(block)


def test_a_wrong_declared_type_names_file_column_and_values(tmp_path: Path):
    (tmp_path / "w.csv").write_text("carrier,n\nUA,1\nAA,2\n9E,3\n")
    with pytest.raises(BadInput) as caught:
        read(tmp_path, "w.csv", columns={"carrier": "int64"})
    message = str(caught.value)
    assert message.startswith(f"source s: file file://{tmp_path}/w.csv: column 'carrier': ")
    assert "3 values do not parse as int64, e.g. 'UA', 'AA', '9E' (on_error: error)" in message


@pytest.mark.parametrize("policy, rows, values", [
    ("null", 4, [1, None, 3, None]), ("drop", 2, [1, 3]),
])  # fmt: skip
def test_values_that_do_not_parse_become_null_or_drop_the_row(tmp_path, policy, rows, values):
    (tmp_path / "p.csv").write_text("n,m\n1,a\nx,b\n3,c\n4.5,d\n")
    table, coercion = read_whole(reader(tmp_path, "p.csv", columns={"n": "int64"}, on_error=policy))
    assert table.num_rows == rows and table["n"].to_pylist() == values
    assert coercion.bad == {"n": 2}
    assert coercion.rows_dropped == (2 if policy == "drop" else 0)


def test_a_bad_value_among_the_first_rows_follows_the_policy(tmp_path: Path):
    (tmp_path / "early.csv").write_text("n,m\nx,a\n2,b\n")
    table, coercion = read_whole(reader(tmp_path, "early.csv", columns={"n": "int64"},
                                        on_error="null"))  # fmt: skip
    assert table.column_names == ["n", "m"] and table["n"].to_pylist() == [None, 2]
    assert coercion.bad == {"n": 1}


def test_an_inferred_type_that_later_fails_says_how_to_fix_it(tmp_path: Path):
    lines = ["1"] * 70000 + ["1.5"]  # past the first MiB the inference saw
    (tmp_path / "late.csv").write_text("n,pad\n" + "\n".join(f"{v},{'x' * 12}" for v in lines))
    with pytest.raises(BadInput, match="column 'n': 1 values do not parse as int64.*declare it"):
        read(tmp_path, "late.csv")


def test_files_of_one_source_share_one_header(tmp_path: Path):
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    (tmp_path / "b.csv").write_text("x,z\n1,2\n")
    with pytest.raises(BadInput, match=r"b.csv: columns \['x', 'z'\] are not \['x', 'y'\]"):
        read(tmp_path, "*.csv")


def test_a_declared_column_must_exist(tmp_path: Path):
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    with pytest.raises(BadInput, match="declared column 'z' is not in .*a.csv"):
        read(tmp_path, "a.csv", columns={"z": "int64"})


def test_a_zip_of_several_files_reads_them_all(tmp_path: Path):
    with zipfile.ZipFile(tmp_path / "many.zip", "w") as archive:
        archive.writestr("part-1.csv", "x\n1\n2\n")
        archive.writestr("part-2.csv", "x\n3\n")
        archive.writestr("__MACOSX/._part-1.csv", "junk")
    assert read(tmp_path, "many.zip", format="csv")["x"].to_pylist() == [1, 2, 3]


def test_text_that_is_no_csv_at_all(tmp_path: Path):
    (tmp_path / "e.csv.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(BadInput, match=r"e.csv.gz: the file is empty"):
        read(tmp_path, "e.csv.gz")


@pytest.mark.parametrize("name", ["p.parquet", "p.csv"])
def test_slices_of_a_block_are_the_block_in_order(tmp_path: Path, name: str):
    """A Parquet row group (one block) comes a batch at a time, with the same types,
    order numbers and bad values as read_block gives it whole."""
    table = pa.table({"i": list(range(5000)), "s": [str(i) for i in range(5000)],
                      "x": ["1.5" if i % 7 else "bad" for i in range(5000)]})  # fmt: skip
    if name.endswith(".parquet"):
        pq.write_table(table, tmp_path / name, row_group_size=5000)
    else:
        pa.csv.write_csv(table, tmp_path / name)
    source = reader(tmp_path, name, columns={"x": "float64"}, on_error="null")
    source.with_order = True
    (block,) = source.blocks(1 << 20)
    whole, coercion = source.read_block(block)
    slices = list(source.read_slices(block, 1024))
    assert [s.num_rows for s, _ in slices] == [1024] * 4 + [904]
    assert pa.concat_tables([s for s, _ in slices]).equals(whole)
    assert sum(c.bad["x"] for _, c in slices if "x" in c.bad) == coercion.bad["x"] > 700
