"""Sniffing how a CSV file is written: separator, decimal mark, encoding, quoted newlines.

The candidates are tried with pyarrow's own CSV parser on a sample (the first MiB), so the
dialect chosen is one the reader is known to accept: a separator qualifies when it splits
the header into several columns and the sample's rows into as many (_choose). csv.Sniffer
and clevercsv guess from character frequencies with parsers of their own (whose verdict
pyarrow would still have to confirm), are slow on a MiB (minutes and seconds), and the
open dialect space they search (any separator, quote and escape) is one we do not need.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from mlbatch.errors import BadInput

SAMPLE_BYTES = 1 << 20  # the dialect is decided from the first MiB
DELIMITERS = (",", ";", "\t", "|")  # tried in this order
ENCODINGS = ("utf-8", "cp1252")  # cp1252: Windows' Western European, latin-1 plus € and “”
# Markers that mean "missing" in raw CSVs (R writes NA; pandas writes an empty field).
NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]
BOMS = {codecs.BOM_UTF8: "utf-8", codecs.BOM_UTF16_LE: "utf-16", codecs.BOM_UTF16_BE: "utf-16",
        codecs.BOM_UTF32_LE: "utf-32", codecs.BOM_UTF32_BE: "utf-32"}  # fmt: skip
CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")  # never in text (tab, newlines, \f are)
DECIMAL_COMMA = r"^[-+]?(\d+|\d*,\d+)$"  # 1,5 or ,5 (or a whole number beside them)


@dataclass(frozen=True)
class Dialect:
    """How one source's CSV files are written."""

    delimiter: str = ","
    decimal: str = "."
    encoding: str = "utf-8"  # a Python codec name
    quoted_newlines: bool = False  # a quoted field spans lines: files cannot be cut at line ends

    def describe(self) -> str:
        """For the stage log: "separator ';', decimal ',', cp1252"."""
        newlines = ", quoted newlines" if self.quoted_newlines else ""
        return (
            f"separator {separator_name(self.delimiter)}, decimal {self.decimal!r}, "
            f"{self.encoding}{newlines}"
        )

    def read_options(self, **options) -> pa_csv.ReadOptions:
        return pa_csv.ReadOptions(encoding=self.encoding, **options)

    def parse_options(self, **options) -> pa_csv.ParseOptions:
        return pa_csv.ParseOptions(
            delimiter=self.delimiter, newlines_in_values=self.quoted_newlines, **options
        )

    def convert_options(self, **options) -> pa_csv.ConvertOptions:
        return pa_csv.ConvertOptions(
            decimal_point=self.decimal, null_values=NULL_VALUES, strings_can_be_null=True,
            **options,
        )  # fmt: skip


@dataclass
class Trial:
    """One candidate separator tried on the sample."""

    delimiter: str
    columns: int = 0
    ragged: list = field(default_factory=list)  # pyarrow's InvalidRow of each ragged row
    table: pa.Table | None = None
    failure: str | None = None

    @property
    def consistent(self) -> bool:
        return self.table is not None and not self.ragged

    def describe(self) -> str:
        name = separator_name(self.delimiter)
        if self.failure:
            return f"{name}: {self.failure}"
        if self.ragged:
            row = self.ragged[0]
            at = f"line {row.number}" if row.number else "a row"
            return f"{name}: {_columns(self.columns)} in the header, {row.actual_columns} on {at}"
        return f"{name}: {_columns(self.columns)}"


def _columns(count: int) -> str:
    return "one column" if count == 1 else f"{count} columns"


def separator_name(delimiter: str) -> str:
    return "tab" if delimiter == "\t" else repr(delimiter)


def head(stream, size: int = SAMPLE_BYTES) -> bytes:
    """About the first `size` bytes of a stream, cut after the last whole line."""
    data = stream.read(size)
    more = bool(stream.read(1))
    if more and b"\n" in data:
        data = data[: data.rfind(b"\n") + 1]
    return data


def sniff(
    sample: bytes, *, where: str, keys: str, delimiter: str | None = None,
    decimal: str | None = None, encoding: str | None = None, quoted_newlines: bool | None = None,
) -> Dialect:  # fmt: skip
    """The dialect of a CSV from its first bytes; what the spec declares is kept as is.

    Args:
        where: names the file in errors ("source flights: file s3://...").
        keys: where the spec sets what is sniffed ("etl.sources.flights"), for errors.
    """
    encoding = encoding or guess_encoding(sample, where=where, keys=keys)
    text = _decode(sample, encoding, where=where, keys=keys)
    if not text.strip():
        raise BadInput(f"{where}: the file is empty")
    utf8 = text.encode()
    if delimiter is not None:
        trial = _try(utf8, delimiter)
        if trial.failure:
            raise BadInput(f"{where}: cannot read as CSV: {trial.failure}")
    else:
        trial = _choose([_try(utf8, d) for d in DELIMITERS], encoding, where=where, keys=keys)
    table = trial.table
    if decimal is None:
        decimal = _guess_decimal(table, trial.delimiter, where=where, keys=keys)
    if quoted_newlines is None:
        strings = [c for c in table.columns if pa.types.is_string(c.type)]
        quoted_newlines = any(
            pc.any(pc.match_substring_regex(c, r"[\r\n]")).as_py() for c in strings
        )
    return Dialect(trial.delimiter, decimal, encoding, quoted_newlines)


def guess_encoding(sample: bytes, *, where: str, keys: str) -> str:
    """UTF-8 (with or without a BOM) when the sample decodes as such, else cp1252."""
    if sample.startswith(b"PK\x03\x04"):
        raise BadInput(f"{where}: a zip archive, not text (an .xlsx file?): set {keys}.format")
    bom = next((name for mark, name in BOMS.items() if sample.startswith(mark)), None)
    if bom is not None and bom != "utf-8":
        raise BadInput(f"{where}: {bom.upper()} text; save it as UTF-8")
    if b"\x00" in sample:
        raise BadInput(f"{where}: not text (NUL bytes in the first MiB); set {keys}.format")
    for encoding in ENCODINGS:
        try:
            _incremental(encoding).decode(sample, final=False)
        except UnicodeDecodeError:
            continue
        return encoding
    raise BadInput(
        f"{where}: cannot tell the text encoding: tried {', '.join(ENCODINGS)}; set {keys}.encoding"
    )


def _decode(sample: bytes, encoding: str, *, where: str, keys: str) -> str:
    if encoding == "utf-8" and sample.startswith(codecs.BOM_UTF8):
        sample = sample[len(codecs.BOM_UTF8) :]
    try:
        text = _incremental(encoding).decode(sample, final=False)
    except UnicodeDecodeError as error:
        raise BadInput(f"{where}: not {encoding} text ({error.reason} at byte {error.start}); "
                       f"set {keys}.encoding") from None  # fmt: skip
    control = CONTROL.search(text)
    if control is not None:
        raise BadInput(f"{where}: not text (control character {control.group()!r} in the first "
                       f"MiB); set {keys}.format")  # fmt: skip
    return text


def _incremental(encoding: str):
    """A decoder that accepts a character cut at the sample's end."""
    return codecs.getincrementaldecoder(encoding)(errors="strict")


def _try(utf8: bytes, delimiter: str) -> Trial:
    trial = Trial(delimiter)

    def ragged(row) -> str:
        trial.ragged.append(row)
        return "skip"

    try:
        trial.table = pa_csv.read_csv(
            pa.BufferReader(utf8),
            read_options=pa_csv.ReadOptions(use_threads=False),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter, newlines_in_values=True, invalid_row_handler=ragged
            ),
            convert_options=Dialect().convert_options(),
        )
    except pa.ArrowInvalid as error:
        trial.failure = " ".join(str(error).split())
        return trial
    trial.columns = trial.table.num_columns
    if trial.ragged and _cut_short(trial.ragged[-1], utf8):
        trial.ragged.pop()
    return trial


def _cut_short(row, utf8: bytes) -> bool:
    """Whether a ragged row is the sample's last one, short: the sample may end inside it
    (in a quoted field spanning lines). A file that truly ends so is malformed, and the
    reader says where."""
    return row.actual_columns < row.expected_columns and utf8.rstrip().endswith(
        row.text.rstrip().encode()
    )


def _choose(trials: list[Trial], encoding: str, *, where: str, keys: str) -> Trial:
    """The separator that splits every row into the header's columns, more than one (the
    one giving the most columns when several do); else the only one that splits most rows
    so, when some lines are malformed (the reader then names the first); a one-column file
    when none splits any line. Anything else cannot be told apart from a broken file."""
    splitting = [t for t in trials if t.consistent and t.columns > 1]
    if splitting:
        most = max(t.columns for t in splitting)
        best = [t for t in splitting if t.columns == most]
        if len(best) == 1:
            return best[0]
        tried = "; ".join(t.describe() for t in best)
        raise BadInput(f"{where}: cannot tell the CSV separator, several fit ({tried}); "
                       f"set {keys}.delimiter")  # fmt: skip
    mostly = [t for t in trials if t.columns > 1 and t.table.num_rows > len(t.ragged)]
    if len(mostly) == 1:
        return mostly[0]
    if all(t.consistent and t.columns == 1 for t in trials):
        return trials[0]
    tried = "; ".join(t.describe() for t in trials)
    raise BadInput(
        f"{where}: cannot tell how the CSV is separated: tried {tried} (read as {encoding}); "
        f"set {keys}.delimiter (or .encoding, .format)"
    )


def _guess_decimal(table: pa.Table, delimiter: str, *, where: str, keys: str) -> str:
    """A comma when some column holds only numbers written with one (1,5) and none holds
    numbers with a decimal point; a comma-separated file cannot use one unquoted."""
    if delimiter == ",":
        return "."
    commas, points = [], []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_floating(column.type):
            points.append(name)
        elif pa.types.is_string(column.type) and column.null_count < len(column):
            values = pc.drop_null(column)
            if (
                pc.all(pc.match_substring_regex(values, DECIMAL_COMMA)).as_py()
                and pc.any(pc.match_substring(values, ",")).as_py()
            ):
                commas.append(name)
    if commas and points:
        raise BadInput(
            f"{where}: cannot tell the decimal mark: column {commas[0]!r} has decimal commas, "
            f"column {points[0]!r} decimal points; set {keys}.decimal"
        )
    return "," if commas else "."
