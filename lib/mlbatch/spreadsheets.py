"""Excel workbooks (.xlsx) as Arrow tables: one sheet, its first row the header.

Cells keep the types Excel stored (numbers, text, booleans, dates) and each column gets
the Arrow type pyarrow infers from its values, as the CSV reader infers from text: a
column of whole numbers with empty cells stays int64 (pandas would make it float64), so
the same table read from a CSV and from a workbook comes out the same.
"""

from __future__ import annotations

import io
import zipfile

import pandas as pd
import pyarrow as pa

from mlbatch import storage
from mlbatch.csv_dialect import NULL_VALUES
from mlbatch.errors import BadInput


def read_xlsx(
    uri: str, *, sheet: str | int | None, where: str, rows: int | None = None
) -> pa.Table:
    """A sheet (a name, or a position from 0; default the first) of the workbook at uri.

    Args:
        rows: read only the first rows (to infer types from), else the whole sheet.
    """
    from openpyxl.utils.exceptions import InvalidFileException

    filesystem, path = storage.arrow_filesystem(uri)
    with filesystem.open_input_file(path) as handle:
        data = io.BytesIO(handle.read())  # openpyxl seeks around the zip archive
    try:
        frame = pd.read_excel(
            data, sheet_name=0 if sheet is None else sheet, engine="openpyxl", dtype=object,
            keep_default_na=False, na_values=NULL_VALUES, nrows=rows,
        )  # fmt: skip
    except (zipfile.BadZipFile, InvalidFileException, KeyError) as error:
        raise BadInput(f"{where}: not an .xlsx workbook ({error})") from None
    except (ValueError, IndexError) as error:  # a sheet that is not there
        raise BadInput(f"{where}: {error} (sheets: {_sheet_names(data)})") from None
    return pa.table({str(name): _column(frame[name]) for name in frame.columns})


def _column(values: pd.Series) -> pa.Array:
    """The column's values as Arrow infers them; text when they mix kinds (12 and "n/a")."""
    try:
        return pa.array(values.tolist(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        text = [None if pd.isna(value) else str(value) for value in values]
        return pa.array(text, pa.string())


def _sheet_names(data: io.BytesIO) -> str:
    from openpyxl import load_workbook

    data.seek(0)
    return ", ".join(load_workbook(data, read_only=True).sheetnames)
