"""`engine: auto`: the Dask cluster when one is given (DASK_SCHEDULER_ADDRESS); else the
pandas engine when the inputs fit comfortably in the memory this process may still use,
Dask otherwise."""

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
# as large as the CSV; compression (gzip, zip, Parquet's own, a workbook's) hides 4 to 8.
EXPANSION = {"csv": 1.5, "jsonl": 1.0, "parquet": 7.0, "xlsx": 8.0}
COMPRESSED_TEXT = 8.0
# A filter holds the table before and after at once (measured: 7.4 GB peak for a 3.4 GB
# output of 10M flights); keep a fifth of the free memory for everything else.
COPIES = 2.2
USABLE = 0.8


def choose_engine(
    setting: str, files: list[SourceFile], *, widening: float, scheduler: str | None = None
) -> tuple[str, str]:
    """(engine, why) for the etl.engine setting and the main source's files.

    Args:
        widening: output columns per main-source column (joins make the table wider).
        scheduler: the Dask scheduler's address when one is given.
    """
    if setting != "auto":
        return setting, f"engine: {setting} in the spec"
    if scheduler:
        # Whoever runs the stage provided a cluster (the chart's `dask.enabled`): use it,
        # whatever the size; `engine: pandas` in the spec still keeps a run off it.
        return "dask", f"auto: a Dask cluster is given ({scheduler})"
    needed = estimate_bytes(files) * max(widening, 1.0) * COPIES
    free = available_bytes()
    engine = "pandas" if needed < USABLE * free else "dask"
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
