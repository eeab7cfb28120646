"""The explore stage's work: summarise etl's table, advise on its columns, and write
report.html, summary.json, advice.json and an executed notebook.ipynb."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mlbatch.errors import BadInput
from mlbatch.notes import leak_note
from mlbatch.stage import StageContext
from mlbatch_jobs.explore import advice as column_advice
from mlbatch_jobs.explore import notebook as notebooks
from mlbatch_jobs.explore import reading
from mlbatch_jobs.explore import relations as column_relations
from mlbatch_jobs.explore import summary as summaries


def run(ctx: StageContext) -> None:
    # Containers have a read-only home; matplotlib, Jupyter and IPython need writable
    # folders, and matplotlib reads MPLCONFIGDIR on import, so set them before that.
    for name, value in notebooks.writable_dirs(ctx.work_dir).items():
        os.environ.setdefault(name, value)
    from mlbatch_jobs.explore import charts, plots, report

    settings = ctx.spec.explore
    schema = _read_schema(ctx)
    target, task = schema.get("target") or ctx.spec.target, schema.get("task") or ctx.spec.task
    # Streamed once: the whole table is never in memory (reading.py).
    read = reading.read_table(
        ctx.fetch("etl", "table.parquet"), ctx.spec, target=target, task=task,
        sample_rows=settings.sample_rows, seed=settings.seed,
    )  # fmt: skip
    if schema.get("rows") not in (None, read.tally.rows):
        print(f"[explore] warning: schema.json says {schema['rows']} rows, the table has "
              f"{read.tally.rows}")  # fmt: skip
    summary = summaries.summarize_tally(
        read.tally, read.target, target=target, task=task, schema=read.schema,
        known_after_prediction=ctx.spec.known_after_prediction, id_columns=ctx.spec.id_columns,
        dtypes=schema.get("columns"), seed=settings.seed,
    )  # fmt: skip
    summary["lineage"] = schema.get("lineage") or {}
    # Everything that reads the target looks at features' training rows only.
    if read.unsplit:
        print(f"[explore] warning: {read.unsplit}")
    sample = read.training_sample.select(_analysable(summary)).to_pandas()
    advice = column_advice.advise(
        read.tally, sample, target=target, task=task, lineage=summary["lineage"],
        known_after_prediction=ctx.spec.known_after_prediction,
        id_columns=ctx.spec.id_columns, settings=settings, training_rows=read.training_rows,
    )  # fmt: skip
    advice["unsplit"] = read.unsplit
    if settings.notebook:  # its kernel starts from this read instead of streaming again
        reading.share(read, ctx.work_dir / "reading.pickle", run_uri=ctx.layout.uri)
    del read
    relations = column_relations.relations(
        sample, target=target, task=task, order=_by_power(advice, sample.columns)
    )
    summary["relations"] = relations

    _write_json(ctx.out_dir / "summary.json", summary)
    _write_json(ctx.out_dir / "advice.json", advice)
    title = f"{ctx.spec.name}: explore ({ctx.layout.run_id})"
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The notebook's kernel is a process of its own: it runs while this one draws.
        executed = None
        if settings.notebook:
            notebook = notebooks.build_notebook(
                run_uri=ctx.layout.uri, title=title, summary=summary, advice=advice,
                relations=relations,
            )  # fmt: skip
            executed = pool.submit(notebooks.execute_notebook, notebook, work_dir=ctx.work_dir)
        images = {**plots.render_plots(summary), **charts.render_charts(summary, advice, relations)}
        page = report.render_report(
            summary, images, title=title, advice=advice, relations=relations,
            notebook=settings.notebook,
        )  # fmt: skip
        (ctx.out_dir / "report.html").write_text(page, encoding="utf-8")
        if executed is not None:
            notebooks.write_notebook(executed.result(), ctx.out_dir / "notebook.ipynb")

    ctx.metrics.update(summaries.metrics(summary))
    ctx.metrics.update(advised_drops=advice["drop"], flagged=advice["flag"],
                       suspected_leaks=advice["suspected_leaks"])  # fmt: skip
    print(f"[explore] {ctx.metrics}")
    for column in advice["drop"] + advice["flag"]:
        entry = advice["columns"][column]
        print(f"[explore] {entry['action']} {column}: {entry['reasons'][0]['message']}")
    line = leak_note(advice["suspected_leaks"])
    if line:
        print(f"[explore] warning: {line.removeprefix('explore: ')}")


def _analysable(summary: dict) -> list[str]:
    """Columns of a kind the analysis understands (nested values are left out)."""
    return [c["name"] for c in summary["column_summaries"] if c["kind"] != "other"]


def _by_power(advice: dict, columns) -> list[str]:
    """Columns most predictive first; those advised dropped after the rest."""
    entries = advice["columns"]
    scored = [c for c in columns if c in entries]
    return sorted(
        scored, key=lambda c: (entries[c]["action"] == "drop", -entries[c].get("power", 0))
    )


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _read_schema(ctx: StageContext) -> dict:
    try:
        schema = json.loads(ctx.fetch("etl", "schema.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BadInput(f"etl's schema.json is not valid JSON: {error}") from None
    if not isinstance(schema, dict):
        raise BadInput("etl's schema.json is not a JSON object")
    return schema
