"""`engine: auto`: the pandas engine when the inputs fit comfortably in the memory this
process may still use, Dask otherwise."""

from __future__ import annotations

from pathlib import Path

import psutil

from mlbatch_jobs.etl.files import SourceFile

CGROUP_FILES = (  # v2, then v1
    (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
    (
        Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
        Path("/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ),
)
UNLIMITED = 1 << 60  # cgroup v1 writes a huge number for "no limit"
# In-memory bytes per stored byte, measured on flights-like tables: Arrow holds text about
# as large as the CSV; compression (gzip, zip, Parquet's own) hides a factor of 4 to 8.
EXPANSION = {"csv": 1.5, "jsonl": 1.0, "parquet": 6.0}
COMPRESSED_TEXT = 8.0
# The pandas engine holds the input, the joined table and the written copy at once.
HEADROOM = 3.0


def choose_engine(setting: str, files: list[SourceFile]) -> tuple[str, str]:
    """(engine, why) for the etl.engine setting and the main source's files."""
    if setting != "auto":
        return setting, f"engine: {setting} in the spec"
    needed = estimate_bytes(files) * HEADROOM
    free = available_bytes()
    engine = "pandas" if needed < free else "dask"
    return engine, f"auto: ~{needed / 2**30:.1f} GiB needed in memory, {free / 2**30:.1f} GiB free"


def estimate_bytes(files: list[SourceFile]) -> float:
    """The main source's size once read into Arrow."""
    total = 0.0
    for file in files:
        factor = EXPANSION[file.format] if file.compression is None else COMPRESSED_TEXT
        total += file.size * factor
    return total


def available_bytes() -> int:
    """The smaller of what the machine has free and what this process's cgroup allows."""
    free = psutil.virtual_memory().available
    for limit_file, usage_file in CGROUP_FILES:
        try:
            limit = limit_file.read_text().strip()
            usage = int(usage_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if limit != "max" and int(limit) < UNLIMITED:
            return max(0, min(free, int(limit) - usage))
    return free
