"""Sniffing CSV dialects from a sample: separators, decimal commas, encodings, a BOM,
quoted newlines, and the one-line errors for files whose dialect cannot be told."""

from __future__ import annotations

import codecs
import io

import pytest

from mlbatch import csv_dialect
from mlbatch.csv_dialect import Dialect, sniff
from mlbatch.errors import BadInput

KEYS = "etl.sources.sales"


def sniffed(text: str | bytes, **declared) -> Dialect:
    data = text.encode() if isinstance(text, str) else text
    return sniff(data, where="source sales: file sales.csv", keys=KEYS, **declared)


def sniff_error(text: str | bytes, **declared) -> str:
    with pytest.raises(BadInput) as caught:
        sniffed(text, **declared)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("source sales: file sales.csv: ")
    return message


@pytest.mark.parametrize(
    "text, delimiter",
    [
        ("id,city,price\n1,Oslo,1.5\n2,Lima,2\n", ","),
        ("id;city;price\n1;Oslo;1.5\n2;Lima;2\n", ";"),
        ("id\tcity\tprice\n1\tOslo, NO\t1.5\n2\tLima; PE\t2\n", "\t"),
        ("id|city|price\n1|Oslo|1.5\n2|Lima|2\n", "|"),
        # Commas inside values do not make a comma-separated file.
        ("id;note\n1;red, green\n2;blue, red, green\n", ";"),
        ('id,note\n1,"a;b"\n2,"c;d;e"\n', ","),
    ],
)
def test_the_separator_that_splits_every_row_alike(text: str, delimiter: str):
    dialect = sniffed(text)
    assert dialect == Dialect(delimiter=delimiter, decimal=".", encoding="utf-8")


def test_decimal_commas_with_semicolons():
    dialect = sniffed("id;price;qty\n1;1,5;3\n2;-0,25;4\n3;;5\n4;12;6\n")
    assert (dialect.delimiter, dialect.decimal) == (";", ",")
    assert dialect.convert_options().decimal_point == ","


def test_a_comma_separated_file_keeps_the_decimal_point():
    assert sniffed("id,price\n1,1.5\n2,2.25\n").decimal == "."


def test_decimal_commas_and_points_together_are_ambiguous():
    message = sniff_error("a;b\n1,5;2.5\n3,5;4.5\n")
    assert "decimal mark" in message and "'a'" in message and "'b'" in message
    assert message.endswith(f"set {KEYS}.decimal")
    # Declared, it is not sniffed.
    assert sniffed("a;b\n1,5;2.5\n", decimal=",").decimal == ","


def test_a_utf8_bom_is_utf8():
    dialect = sniffed(codecs.BOM_UTF8 + "a;b\nKöln;1\n".encode())
    assert (dialect.encoding, dialect.delimiter) == ("utf-8", ";")


def test_cp1252_text_when_it_is_not_utf8():
    dialect = sniffed("stadt;preis\nKöln;1,5\nZürich;2,5 €\n".encode("cp1252"))
    assert dialect.encoding == "cp1252" and dialect.delimiter == ";"
    # A declared encoding is used as is (latin-1 decodes any byte).
    assert sniffed("a,b\nKöln,1\n".encode("latin-1"), encoding="latin-1").encoding == "latin-1"


def test_quoted_newlines_are_found_and_a_sample_may_end_inside_one():
    text = 'id,note,y\n1,"first line\nsecond line",0\n2,plain,1\n'
    assert sniffed(text).quoted_newlines
    assert sniffed(text + '3,"cut by the sample\nend').quoted_newlines
    assert not sniffed("id,note\n1,plain\n").quoted_newlines
    assert sniffed(text).parse_options().newlines_in_values
    assert not sniffed(text, quoted_newlines=False).quoted_newlines  # declared


def test_a_one_column_file_is_one_column():
    dialect = sniffed('name\nalice\n"bob, jr"\n')
    assert dialect.delimiter == "," and not dialect.quoted_newlines


def test_a_declared_separator_is_not_sniffed():
    assert sniffed("a,b;c\n1,2;3\n", delimiter=";").delimiter == ";"


def test_ragged_rows_name_what_was_tried_and_the_keys():
    message = sniff_error("a;b;c\n1;2\n3;4;5;6\n7\n")
    assert "cannot tell how the CSV is separated: tried ','" in message
    assert "';': 3 columns in the header, 2 on line 2" in message
    assert "tab: one column" in message and "'|': one column" in message
    assert "read as utf-8" in message
    assert f"set {KEYS}.delimiter (or .encoding, .format)" in message


def test_a_few_malformed_lines_keep_the_separator_most_rows_agree_on():
    # The reader then names the first malformed line (tests/unit/test_etl_inputs.py).
    assert sniffed("a;b;c\n1;2;3\n4;5;6\n7;8\n").delimiter == ";"


def test_two_separators_that_both_fit_are_ambiguous():
    message = sniff_error("a,b;c\n1,2;3\n4,5;6\n")
    assert "several fit (',': 2 columns; ';': 2 columns)" in message
    assert message.endswith(f"set {KEYS}.delimiter")


@pytest.mark.parametrize(
    "data, expected",
    [
        (bytes(range(256)) * 8, f"not text (NUL bytes in the first MiB); set {KEYS}.format"),
        (b"PK\x03\x04" + b"\x14\x00" * 20,
         f"a zip archive, not text (an .xlsx file?): set {KEYS}.format"),
        ("a,b\n1,2\n".encode("utf-16"), "UTF-16 text; save it as UTF-8"),
        (b"a,b\n\x81\x8d,\x90\x9d\n", f"tried utf-8, cp1252; set {KEYS}.encoding"),
        (b"a,b\n\x1b[0m,\x07\n",
         f"not text (control character '\\x1b' in the first MiB); set {KEYS}.format"),
        (b"\n\n  \n", "the file is empty"),
    ],
)  # fmt: skip
def test_what_is_not_csv_text_says_so(data: bytes, expected: str):
    assert sniff_error(data).endswith(expected)


def test_a_declared_encoding_that_does_not_decode_names_the_key():
    message = sniff_error("a,b\nKöln,1\n".encode("cp1252"), encoding="utf-8")
    assert "not utf-8 text (invalid start byte at byte 5)" in message
    assert message.endswith(f"set {KEYS}.encoding")


def test_the_sample_is_the_head_cut_after_a_whole_line():
    data = b"a,b\n" + b"1,2\n" * 1000
    sample = csv_dialect.head(io.BytesIO(data), size=10)
    assert sample == b"a,b\n1,2\n"
    assert csv_dialect.head(io.BytesIO(b"a,b\n1,2"), size=100) == b"a,b\n1,2"
