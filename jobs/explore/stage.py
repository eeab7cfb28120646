"""The explore stage's work: summarise etl's table into report.html and summary.json."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq

from mlbatch.errors import BadInput
from mlbatch.stage import StageContext
from mlbatch_jobs.explore import summary as summaries


def run(ctx: StageContext) -> None:
    # Containers have a read-only home; matplotlib needs a writable config and cache
    # folder, and reads MPLCONFIGDIR when it is imported, so set it before that.
    os.environ.setdefault("MPLCONFIGDIR", str(ctx.work_dir / "matplotlib"))
    from mlbatch_jobs.explore import plots, report

    schema = _read_schema(ctx)
    table = pq.read_table(ctx.fetch("etl", "table.parquet"))
    if schema.get("rows") not in (None, table.num_rows):
        print(f"[explore] warning: schema.json says {schema['rows']} rows, the table has "
              f"{table.num_rows}")  # fmt: skip
    summary = summaries.summarize(
        table,
        target=schema.get("target") or ctx.spec.target,
        task=schema.get("task") or ctx.spec.task,
        known_after_prediction=ctx.spec.known_after_prediction,
        id_columns=ctx.spec.id_columns,
        dtypes=schema.get("columns"),
    )
    summary["lineage"] = schema.get("lineage") or {}
    del table

    (ctx.out_dir / "summary.json").write_text(
        json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    title = f"{ctx.spec.name}: explore ({ctx.layout.run_id})"
    page = report.render_report(summary, plots.render_plots(summary), title=title)
    (ctx.out_dir / "report.html").write_text(page, encoding="utf-8")
    ctx.metrics.update(summaries.metrics(summary))
    print(f"[explore] {ctx.metrics}")


def _read_schema(ctx: StageContext) -> dict:
    try:
        schema = json.loads(ctx.fetch("etl", "schema.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BadInput(f"etl's schema.json is not valid JSON: {error}") from None
    if not isinstance(schema, dict):
        raise BadInput("etl's schema.json is not a JSON object")
    return schema
