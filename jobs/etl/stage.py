"""The etl stage: find the sources' files, plan the steps, run them on the chosen engine,
validate the result, and write table.parquet, schema.json and validation.json."""

from __future__ import annotations

import os
import shutil

import pandas as pd

from mlbatch import storage
from mlbatch.errors import BadInput, ValidationFailed
from mlbatch.stage import StageContext
from mlbatch.tasks import resolve_task
from mlbatch_jobs.etl import engine_dask, engine_pandas, output, report
from mlbatch_jobs.etl.dask_cluster import SCHEDULER_ENV, dask_client, require_shared_files
from mlbatch_jobs.etl.engine_choice import choose_engine
from mlbatch_jobs.etl.files import resolve_files
from mlbatch_jobs.etl.plan import Plan, build_plan
from mlbatch_jobs.etl.summary import Outcome
from mlbatch_jobs.etl.validation import report as validation_report

VALIDATION = "validation.json"


def run(ctx: StageContext) -> None:
    spec, etl = ctx.spec, ctx.spec.etl
    files = {
        name: resolve_files(name, source, ctx.layout.storage_uri, stat=ctx.record_external)
        for name, source in etl.sources.items()
    }
    for name, found in files.items():
        print(f"source {name}: {len(found)} {found[0].format} files, {_size(found)}")
    plan = build_plan(spec, files)
    early = plan.validator.schema_findings(plan.output)
    if any(f.status == "failed" for f in early):
        _fail_validation(ctx, early, rows=None)
    widening = len(plan.output) / max(len(plan.main.types), 1)
    engine, why = choose_engine(
        etl.engine, files[etl.main_source], widening=widening,
        scheduler=os.environ.get(SCHEDULER_ENV),
    )  # fmt: skip
    print(f"engine {engine} ({why})")
    ctx.metrics.update(engine=engine, engine_reason=why)
    if engine == "pandas":
        staged = ctx.out_dir / f"{output.TABLE}.tmp"  # never published under this name
        try:
            table, outcome = engine_pandas.run(
                plan, sample=etl.sample_rows, seed=etl.seed, staged=staged
            )
            _check(ctx, plan, outcome)
            output.write_table(
                table, ctx.out_dir, partition_by=etl.output.partition_by, staged=staged
            )
        finally:
            staged.unlink(missing_ok=True)
        rows, nulls = table.num_rows, {n: table[n].null_count for n in table.column_names}
    else:
        rows, nulls = _run_dask(ctx, plan)
    _write_schema(ctx, plan, rows, nulls)
    print(f"wrote {rows:,} rows x {len(plan.output)} columns ({engine} engine)")


def _run_dask(ctx: StageContext, plan: Plan) -> tuple[int, dict]:
    etl = ctx.spec.etl
    with dask_client(workers=etl.dask.workers, scratch=ctx.work_dir / "dask") as (client, local):
        remote_parts = not local and storage.local_path(ctx.layout.storage_uri) is None
        parts_uri = (
            storage.join(ctx.layout.attempt_uri("etl", ctx.attempt), "_parts")
            if remote_parts
            else storage.resolve_uri(str(ctx.work_dir / "parts"))
        )
        print(f"dask: parts in {parts_uri}")  # on a remote cluster, workers write them there
        if not local and not remote_parts:
            _require_shared_files(client, plan, parts_uri)
        parts, outcome = engine_dask.run(
            plan, client, partition_bytes=etl.dask.partition_mb << 20, parts_uri=parts_uri,
            sample=etl.sample_rows, seed=etl.seed,
        )  # fmt: skip
    try:
        _check(ctx, plan, outcome)
        hashes = outcome.summary.smallest_hashes
        limit = None if hashes is None else (hashes[-1], int((hashes == hashes[-1]).sum()))
        return output.assemble_parts(
            parts, ctx.out_dir, partition_by=etl.output.partition_by, hash_limit=limit
        )
    finally:
        if remote_parts:  # the parts and the unique rules' hash files beside them
            filesystem, root = storage.arrow_filesystem(parts_uri)
            filesystem.delete_dir(root)
        else:
            shutil.rmtree(ctx.work_dir / "parts", ignore_errors=True)


def _require_shared_files(client, plan: Plan, parts_uri: str) -> None:
    """file:// storage on a cluster: the workers must see the main source and the parts
    folder (they read and write them), as workers on this machine do."""
    parts = storage.local_path(parts_uri)
    parts.mkdir(parents=True, exist_ok=True)
    sources = [storage.local_path(f.uri) for f in plan.main.files]
    require_shared_files(client, [parts, *[p for p in sources if p is not None]])


def _check(ctx: StageContext, plan: Plan, outcome: Outcome) -> None:
    """Report what each step did, apply the validation rules and resolve the task."""
    spec = ctx.spec
    steps = report.step_summaries(plan, outcome)
    for entry in steps:
        print(report.describe_step(entry))
    summary = outcome.summary
    findings = plan.validator.findings(
        plan.output, summary.rows, summary.checks, outcome.duplicates
    )
    rows_in = {plan.main.name: outcome.rows_read}
    rows_in.update({name: source["rows"] for name, source in plan.sources.items()})
    filtered = sum(s["rows_in"] - s["rows_out"] for s in steps if " filter" in s["step"])
    statuses = [f.status for f in findings]
    ctx.metrics.update(
        rows_in=rows_in,
        steps=steps,
        bad_values=report.bad_values(plan, outcome, steps),
        rows_missing_target=steps[-1]["rows_in"] - steps[-1]["rows_out"],
        rows_filtered=filtered,
        validation={s: statuses.count(s) for s in ("passed", "warned", "failed")},
    )
    for finding in findings:
        if finding.status == "warned":
            print(f"validation warning: {finding.describe()}")
    if any(f.status == "failed" for f in findings):
        _fail_validation(ctx, findings, rows=summary.rows)
    output.write_json(ctx.out_dir / VALIDATION, validation_report(findings, summary.rows))
    if summary.rows == 0:
        raise BadInput(
            "no rows left after the steps"
            + (" and dropping rows without a target" if plan.target else "")
        )
    if plan.target is None:  # scoring: the model knows its task
        ctx.metrics["task"] = None if spec.task == "auto" else spec.task
        return
    values = summary.target_values.to_pandas().rename(spec.target)
    ctx.metrics["task"] = resolve_task(spec.task, pd.Series(values))


def _fail_validation(ctx: StageContext, findings: list, *, rows: int | None) -> None:
    """Write validation.json into the attempt folder (uncommitted) and stop with exit 3."""
    path = ctx.out_dir / VALIDATION
    output.write_json(path, validation_report(findings, rows))
    storage.upload_file(path, storage.join(ctx.layout.attempt_uri("etl", ctx.attempt), VALIDATION))
    raise ValidationFailed(report.failure_message(findings))


def _write_schema(ctx: StageContext, plan: Plan, rows: int, nulls: dict) -> None:
    spec = ctx.spec
    schema = {
        "target": spec.target,
        "task": ctx.metrics["task"],
        "rows": rows,
        "columns": output.pandas_dtypes(plan.output, nulls),
        "types": {field.name: str(field.type) for field in plan.output},
        "origin": plan.origin,
        "lineage": plan.lineage,
        "known_after_prediction": spec.known_after_prediction,
        "id_columns": spec.id_columns,
        "partition_by": spec.etl.output.partition_by,
    }
    output.write_json(ctx.out_dir / "schema.json", schema)
    ctx.metrics.update(rows=rows, columns=len(plan.output))


def _size(files: list) -> str:
    total = sum(f.size for f in files)
    return f"{total / 2**20:,.1f} MiB"
