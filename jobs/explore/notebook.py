"""notebook.ipynb: the exploration as a notebook a data scientist can re-run and extend.

Built with nbformat and executed headless with nbclient. Its code loads the run's ETL
output from storage (through etl's manifest, as every stage does) and recomputes the
key tables and plots with the same functions the stage used; its Markdown cells state
what this run's exploration found. Jupyter and IPython write only under the folders
`writable_dirs` names (containers run with a read-only home).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

KERNEL = "python3"
CELL_TIMEOUT_S = 600
STRONG_CORRELATION = 0.9  # |Spearman| from which the notes name a pair


def writable_dirs(root: Path) -> dict[str, str]:
    """Environment variables that keep matplotlib, Jupyter and IPython under root."""
    return {
        "MPLCONFIGDIR": str(root / "matplotlib"),
        "JUPYTER_CONFIG_DIR": str(root / "jupyter" / "config"),
        "JUPYTER_DATA_DIR": str(root / "jupyter" / "data"),
        "JUPYTER_RUNTIME_DIR": str(root / "jupyter" / "runtime"),
        "IPYTHONDIR": str(root / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",  # the future default; silences jupyter_core's warning
    }


def build_notebook(
    *,
    run_uri: str,
    title: str,
    summary: Mapping[str, Any],
    advice: Mapping[str, Any],
    relations: Mapping[str, Any],
):
    """The notebook's cells, findings filled in from this run's summary and advice."""
    import nbformat.v4 as nbf

    target, task = summary["target"]["name"], summary["target"]["task"]
    cells = [
        nbf.new_markdown_cell(
            f"# {title}\n\nThis notebook loads the clean table that this run's **etl** "
            f"stage committed and explores it: {summary['rows']:,} rows, "
            f"{summary['columns']} columns, target `{target}` ({task}). Every number below "
            "is recomputed when the notebook runs; change `RUN` to explore another run."
        ),
        nbf.new_code_cell(SETUP.format(run=run_uri)),
        nbf.new_markdown_cell(
            "## Load the ETL output\n\nThrough etl's manifest (never a folder listing), so "
            "this reads exactly the table the later stages use, on `file://` or `s3://`."
        ),
        nbf.new_code_cell(LOAD),
        nbf.new_markdown_cell("## Columns\n\nType, missing share and distinct values."),
        nbf.new_code_cell(COLUMNS),
        nbf.new_markdown_cell(_target_finding(summary["target"])),
        nbf.new_code_cell(TARGET_REGRESSION if task == "regression" else TARGET_CLASSES),
        nbf.new_markdown_cell(_missing_finding(summary)),
        nbf.new_code_cell(MISSING),
        nbf.new_markdown_cell(_advice_finding(advice)),
        nbf.new_code_cell(ADVICE),
        nbf.new_markdown_cell(_power_finding(advice)),
        nbf.new_code_cell(POWER),
        nbf.new_markdown_cell(_correlation_finding(relations["correlation"])),
        nbf.new_code_cell(CORRELATION),
        nbf.new_markdown_cell(
            "## The target against the most predictive kept columns\n\nPer bin or top "
            "category; the dashed line is the overall level."
        ),
        nbf.new_code_cell(BY_TARGET),
        nbf.new_markdown_cell(
            "## Outliers\n\nRows beyond the IQR fences (Q1 − 1.5·IQR, Q3 + 1.5·IQR) and "
            "beyond 3 standard deviations. Skewed columns have many by the IQR rule without "
            "any value being wrong, which is why features imputes them with the median."
        ),
        nbf.new_code_cell(OUTLIERS),
        nbf.new_markdown_cell(
            "## Next\n\nThe features stage applies the drops above unless the spec keeps a "
            "column (`features.keep`), and chooses each remaining column's treatment from "
            "the training rows; its `report.html` says what it did to each column and why."
        ),
    ]
    notebook = nbf.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": KERNEL,
        "display_name": "Python 3",
        "language": "python",
    }
    return notebook


def execute_notebook(notebook, *, work_dir: Path):
    """Run every cell in a fresh kernel; CellExecutionError names the failing cell."""
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    for name, value in writable_dirs(work_dir).items():
        os.environ.setdefault(name, value)
        if name.endswith("DIR"):
            Path(os.environ[name]).mkdir(parents=True, exist_ok=True)
    # Unix sockets in the runtime folder, not TCP on loopback: nothing else can connect.
    runtime = Path(os.environ["JUPYTER_RUNTIME_DIR"])
    kernel = AsyncKernelManager(kernel_name=KERNEL, transport="ipc", ip=str(runtime / "kernel"))
    client = NotebookClient(
        notebook, km=kernel, timeout=CELL_TIMEOUT_S, record_timing=False,
        resources={"metadata": {"path": str(work_dir)}},
    )  # fmt: skip
    client.execute()
    return notebook


def write_notebook(notebook, path: Path) -> None:
    import nbformat

    nbformat.write(notebook, path)


def _target_finding(target: Mapping[str, Any]) -> str:
    if target["task"] == "regression":
        return (
            f"## Target\n\n`{target['name']}` ranges from {target['min']:.4g} to "
            f"{target['max']:.4g} (median {target['median']:.4g}, mean {target['mean']:.4g})."
        )
    shares = ", ".join(f"`{c['value']}` {c['share']:.1%}" for c in target["classes"][:10])
    minority = target["minority_class_share"]
    note = (
        " The classes are imbalanced: the split keeps their shares (stratified) and "
        "ROC AUC, not accuracy, ranks the models."
        if minority < 0.3 else ""
    )  # fmt: skip
    return f"## Target\n\nClass shares: {shares}.{note}"


def _missing_finding(summary: Mapping[str, Any]) -> str:
    missing = [c for c in summary["column_summaries"] if c["missing"]]
    if not missing:
        return "## Missing values\n\nNo column has missing values."
    worst = sorted(missing, key=lambda c: -c["missing_share"])[:5]
    listed = ", ".join(f"`{c['name']}` {c['missing_share']:.1%}" for c in worst)
    return (
        f"## Missing values\n\n{len(missing)} columns have missing values; the most: "
        f"{listed}. Columns missing together usually share a cause (a join that found no "
        "match). features imputes numbers and adds a was-missing column where it matters."
    )


def _advice_finding(advice: Mapping[str, Any]) -> str:
    lines = ["## Column advice", ""]
    for column, entry in advice["columns"].items():
        if entry["action"] == "keep":
            continue
        why = "; ".join(r["message"] for r in entry["reasons"])
        lines.append(f"- **{entry['action']}** `{column}`: {why}")
    if len(lines) == 2:
        lines.append("Nothing to drop or flag.")
    lines += ["", "The cell below recomputes the advice from the data and the run's spec."]
    return "\n".join(lines)


def _correlation_finding(correlation: Mapping[str, Any]) -> str:
    columns, matrix = correlation["columns"], correlation["matrix"]
    pairs = sorted(
        ((abs(matrix[i][j]), columns[i], columns[j])
         for i in range(len(columns)) for j in range(i + 1, len(columns))
         if matrix[i][j] is not None and abs(matrix[i][j]) >= STRONG_CORRELATION),
        reverse=True,
    )  # fmt: skip
    found = ", ".join(f"`{a}` and `{b}` ({value:.2f})" for value, a, b in pairs[:6])
    text = f"The strongest pairs: {found}." if found else "No pair is strongly correlated."
    return (
        "## Correlations\n\nSpearman correlations of the numeric columns in the sample: pairs "
        f"near ±1 carry the same information twice. {text}"
    )


def _power_finding(advice: Mapping[str, Any]) -> str:
    kept = [(c, e) for c, e in advice["columns"].items() if e["action"] != "drop"]
    ranked = sorted(((c, e["power"]) for c, e in kept if "power" in e), key=lambda i: -i[1])[:3]
    best = ", ".join(f"`{c}` ({v:.3f})" for c, v in ranked) or "none"
    return (
        "## Single-column predictive power\n\nEach column alone, cross-fitted on two halves "
        f"of the sample ({advice['power_metric']}). The strongest kept columns: {best}. "
        "Anything close to perfect on its own is more likely a leak than a discovery."
    )


SETUP = """\
RUN = {run!r}

import json
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import seaborn as sns

from mlbatch import storage
from mlbatch.manifest import load_manifest, output_uri
from mlbatch.runs import RunLayout, read_spec
from mlbatch.spec import PipelineSpec
from mlbatch_jobs.explore import advice as column_advice
from mlbatch_jobs.explore import reading, relations, summary

%matplotlib inline
plt.rcParams["text.parse_math"] = False  # column names are data, not TeX
warnings.filterwarnings("ignore", category=PendingDeprecationWarning, module="seaborn")
"""

LOAD = """\
layout = RunLayout.from_run_uri(RUN)
spec = PipelineSpec.model_validate(read_spec(layout))
etl, _ = load_manifest(layout, "etl")
schema = json.loads(storage.read_bytes(output_uri(layout, etl, "schema.json")))
target, task = schema["target"], schema["task"]
settings = spec.explore
# Streamed once, as the stage reads it: the whole table is never in memory. Target-based
# checks see features' training rows only, as the stage's did. Executed by the stage,
# the notebook starts from the stage's own read of this run's table.
read = reading.shared(RUN)
source_of = "the stage's read" if read is not None else "streamed from storage"
if read is None:
    filesystem, path = storage.arrow_filesystem(output_uri(layout, etl, "table.parquet"))
    with filesystem.open_input_file(path) as source:
        read = reading.read_table(source, spec, target=target, task=task,
                                  sample_rows=settings.sample_rows, seed=settings.seed)
facts = summary.summarize_tally(read.tally, read.target, target=target, task=task,
                                schema=read.schema)
columns = pd.DataFrame(facts["column_summaries"]).set_index("name")
y = read.target.to_pandas()
sample = read.training_sample.to_pandas()
print(f"{read.tally.rows:,} rows x {len(columns)} columns; target {target!r} ({task}); "
      f"sample of {len(sample):,} training rows ({source_of})")
"""

COLUMNS = """\
estimated = ", ".join(facts["estimated"]) or "none"
print(f"distinct counts estimated (HyperLogLog), top values from the sample: {estimated}")
shown = columns[["dtype", "missing_share", "distinct"]]
shown.rename(columns={"missing_share": "missing"}).round(4)
"""

TARGET_CLASSES = """\
balance = y.value_counts(normalize=True)
balance.plot.barh(title=f"{target}: class balance").invert_yaxis()
balance.round(4).to_frame("share")
"""

TARGET_REGRESSION = """\
y.plot.hist(bins=40, title=target)
y.describe().to_frame()
"""

MISSING = """\
missing = columns["missing_share"]
missing = missing[missing > 0].sort_values()
if len(missing):
    missing.plot.barh(title="share of rows missing", figsize=(6, 0.3 * len(missing) + 1))
missing.round(4).to_frame("missing")
"""

ADVICE = """\
advice = column_advice.advise(
    read.tally, sample, target=target, task=task, lineage=schema.get("lineage") or {},
    known_after_prediction=spec.known_after_prediction, id_columns=spec.id_columns,
    settings=settings,
)
pd.DataFrame([
    {"column": column, "advice": entry["action"],
     "why": "; ".join(r["message"] for r in entry["reasons"])}
    for column, entry in advice["columns"].items() if entry["action"] != "keep"
])
"""

POWER = """\
power = pd.Series({c: e["power"] for c, e in advice["columns"].items() if "power" in e})
power = power.sort_values()
colors = ["#c44e52" if advice["columns"][c]["action"] == "drop" else "#4c72b0" for c in power.index]
power.plot.barh(color=colors, figsize=(6, 0.25 * len(power) + 1),
                title=f"{advice['power_metric']} of each column alone (red: dropped)")
power.sort_values(ascending=False).to_frame(advice["power_metric"])
"""

CORRELATION = """\
numeric = sample.select_dtypes("number").loc[:, lambda frame: frame.nunique() > 1]
plt.figure(figsize=(10, 8))
sns.heatmap(numeric.rank().corr(), cmap="vlag", center=0, vmin=-1, vmax=1)  # Spearman
"""

BY_TARGET = """\
kept = [c for c, e in advice["columns"].items() if e["action"] != "drop"]
top = sorted(kept, key=lambda c: -advice["columns"][c].get("power", 0))[:6]
fig, axes = plt.subplots(2, 3, figsize=(13, 7), layout="constrained")
for ax, column in zip(axes.ravel(), top):
    found = relations.target_by_key(sample[column], sample[target], task)
    level = found["mean"] if "mean" in found else [row[-1] for row in found["shares"]]
    ax.bar(range(len(level)), level)
    ax.set_xticks(range(len(level)), [str(label)[:14] for label in found["labels"]], rotation=60)
    ax.set_title(column)
"""

OUTLIERS = """\
numeric_columns = [c for c in sample.select_dtypes("number").columns if c != target]
pd.DataFrame(relations.outliers(sample, numeric_columns)).head(15)
"""
