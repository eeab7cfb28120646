"""The explore stage's notebook: executed headless under a home nobody can write to, every
cell clean, its data loaded from the run's storage (file:// and a real S3 server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from mlbatch import storage
from mlbatch.manifest import Manifest, OutputFile, Profile, commit, load_manifest, output_uri
from mlbatch.runs import RunLayout, new_run_id, write_spec

pytestmark = pytest.mark.slow  # starts the stage and a Jupyter kernel
ROWS = 3000
# Variables that would point matplotlib, Jupyter or IPython somewhere writable: the test
# removes them so that only the stage can provide such places.
WRITABLE_HINTS = (
    "MPLCONFIGDIR", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR",
    "IPYTHONDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME",
)  # fmt: skip


def etl_table() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    hour = rng.integers(5, 23, ROWS)
    return pd.DataFrame({
        "hour": hour, "distance": rng.lognormal(6, 0.6, ROWS),
        "carrier": rng.choice(["AA", "B6", "DL", "UA"], ROWS),
        "ticket": [f"T{i:06d}" for i in range(ROWS)],
        "late": (hour / 23 + rng.random(ROWS) > 1.1),
    })  # fmt: skip


def committed_etl(storage_uri: str, scratch: Path) -> RunLayout:
    layout = RunLayout(storage_uri, new_run_id())
    write_spec(layout, {
        "name": "notebook", "target": "late", "task": "binary",
        "etl": {"sources": {"table": {"uri": "table.csv"}}},
        "explore": {"sample_rows": 2000},
    })  # fmt: skip
    files = {"table.parquet": scratch / "table.parquet", "schema.json": scratch / "schema.json"}
    etl_table().to_parquet(files["table.parquet"], index=False)
    files["schema.json"].write_text(json.dumps({"target": "late", "task": "binary", "lineage": {}}))
    attempt = layout.attempt_uri("etl", "1-aaaa")
    outputs = {}
    for name, path in files.items():
        storage.upload_file(path, storage.join(attempt, name))
        outputs[name] = OutputFile(size=path.stat().st_size, sha256=storage.sha256_file(path))
    assert commit(layout, Manifest(
        run_id=layout.run_id, stage="etl", attempt="1-aaaa", status="succeeded", exit_code=0,
        code_version="test", config_hash="test", outputs=outputs,
        profile=Profile(wall_s=0, cpu_s=0, peak_rss_mb=0), started=0, finished=0,
    ))  # fmt: skip
    return layout


@pytest.fixture(params=["file", "s3"])
def storage_root(request):
    return request.getfixturevalue("file_storage" if request.param == "file" else "s3_env")


def test_notebook_executes_cleanly_under_a_read_only_home(storage_root, tmp_path: Path):
    layout = committed_etl(storage_root, tmp_path)
    home = tmp_path / "home"
    home.write_text("a file, not a folder: nothing can be created under it, even by root")
    env = {k: v for k, v in os.environ.items() if k not in WRITABLE_HINTS} | {"HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-m", "mlbatch_jobs.explore", "--run", layout.uri, "--attempt", "1-bbbb"],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr

    manifest, _ = load_manifest(layout, "explore")
    assert {"notebook.ipynb", "report.html", "advice.json", "summary.json"} <= set(manifest.outputs)
    notebook = nbformat.reads(
        storage.read_bytes(output_uri(layout, manifest, "notebook.ipynb")).decode(), as_version=4
    )
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count for cell in code)  # every cell ran, in order
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    outputs = [output for cell in code for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    printed = "".join(o.text for o in outputs if o.output_type == "stream")
    assert f"{ROWS:,} rows x 5 columns; target 'late' (binary)" in printed  # read from storage
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # balance, missing-or-none, power, correlation, by target
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert "**drop** `ticket`" in markdown  # the advice, explained
    advice_cell = next(c for c in code if "column_advice.advise(" in c.source)
    table = advice_cell.outputs[0]["data"]["text/plain"]
    assert "ticket" in table and "drop" in table  # recomputed in the notebook, same advice
