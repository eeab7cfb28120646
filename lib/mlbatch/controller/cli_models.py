"""`mlbatch` commands for registered models: models, models show, promote, predict."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mlbatch import registry, storage
from mlbatch.controller.cli_common import (
    Output,
    OutputOption,
    StorageOption,
    console,
    errors,
    storage_root,
)
from mlbatch.errors import BadInput

models_app = typer.Typer(help="Registered models: names, versions, aliases.", no_args_is_help=False)


@models_app.callback(invoke_without_command=True)
def models(
    context: typer.Context,
    storage_option: StorageOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Registered models: their versions and where their aliases point."""
    context.obj = storage_option
    if context.invoked_subcommand is not None:
        return
    root = storage_root(storage_option)
    rows = model_rows(root)
    if output == Output.json:
        _print_json(rows)
        return
    table = Table(title=f"models in {root}", title_justify="left")
    for column in ("model", "versions", "latest", "aliases"):
        table.add_column(column)
    for row in rows:
        aliases = ", ".join(f"{a} → {v}" for a, v in sorted(row["aliases"].items()))
        latest = str(row["versions"][-1]) if row["versions"] else ""
        table.add_row(row["name"], str(len(row["versions"])), latest, aliases)
    console.print(table)


@models_app.command("show")
def show(
    context: typer.Context,
    reference: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME:N.")],
    storage_option: StorageOption = None,
    output: OutputOption = Output.table,
) -> None:
    """A model's versions (NAME), or one version with its metrics and lineage (@ALIAS, :N)."""
    root = storage_root(storage_option or context.obj)
    parsed = registry.parse_reference(reference, bare_name=True)
    if parsed.run_id is not None:
        raise BadInput(f"{reference!r} is a run id: `mlbatch status {reference}` shows runs")
    if parsed.alias is None and parsed.version is None:
        _show_versions(root, parsed.name, output)
        return
    record = registry.resolve(root, parsed)
    alias = registry.read_alias(root, parsed.name, parsed.alias) if parsed.alias else None
    if output == Output.json:
        _print_json({**record, "alias": alias.document() if alias else None})
        return
    pointing = [
        a for a, p in registry.aliases(root, parsed.name).items() if p.version == record["version"]
    ]
    summary = {
        "model": f"{record['name']}:{record['version']}", "aliases": ", ".join(pointing) or "-",
        "run": record["run_id"], "registered": record["registered"], "task": record.get("task"),
        "target": record.get("target"), "family": record.get("model_family"),
        "threshold": (record.get("threshold") or {}).get("value", "-"),
    }  # fmt: skip
    console.print(_key_values(summary, title=reference))
    console.print(_key_values(record.get("metrics", {}), title="test metrics"))
    if alias is not None:
        history = Table(title=f"history of {parsed.name}@{parsed.alias}", title_justify="left")
        for column in ("move", "version", "previous", "at", "by", "reason"):
            history.add_column(column)
        for move in alias.history:
            history.add_row(
                str(move["move"]), str(move["version"]), str(move["previous"] or "-"),
                move["at"][:19].replace("T", " "), move["by"], move["reason"],
            )  # fmt: skip
        console.print(history)
    lineage = record.get("lineage", {})
    console.print(f"lineage: {lineage.get('run_uri', '')}", highlight=False, soft_wrap=True)
    for uri, digest in lineage.get("manifests", {}).items():
        console.print(f"  {uri} sha256:{digest[:12]}", highlight=False, soft_wrap=True)


def model_rows(root: str) -> list[dict]:
    """Every registered model: its version numbers and where its aliases point."""
    rows = []
    for name in registry.model_names(root):
        numbers = [v["version"] for v in registry.versions(root, name)]
        pointers = {a: alias.version for a, alias in registry.aliases(root, name).items()}
        rows.append({"name": name, "versions": numbers, "aliases": pointers})
    return rows


def model_versions(root: str, name: str) -> dict:
    """A model's version records (oldest first) and its aliases with their histories;
    BadInput if no such model."""
    records = registry.versions(root, name)
    if not records:
        raise BadInput(f"no model named {name!r} in {root}")
    pointers = registry.aliases(root, name)
    return {"name": name, "versions": records,
            "aliases": {a: p.document() for a, p in sorted(pointers.items())}}  # fmt: skip


def _show_versions(root: str, name: str, output: Output) -> None:
    shown = model_versions(root, name)
    if output == Output.json:
        _print_json(shown)
        return
    records, pointers = shown["versions"], shown["aliases"]
    table = Table(title=f"model {name}", title_justify="left")
    # No registration time: the run id starts with it.
    for column in ("version", "aliases", "run", "family", "metric"):
        table.add_column(column, no_wrap=column in ("run", "metric"))
    for record in records:
        aliases = ", ".join(a for a, p in pointers.items() if p["version"] == record["version"])
        metric = record.get("metric") or {}
        shown = f"{metric['name']} {metric['value']:.4f}" if metric.get("value") is not None else ""
        table.add_row(str(record["version"]), aliases, record["run_id"],
                      str(record.get("model_family", "")), shown)  # fmt: skip
    console.print(table)


def promote(
    reference: Annotated[str, typer.Argument(help="NAME:N, the version to point the alias at.")],
    alias: Annotated[str, typer.Option(help="The alias to move (created if new).")],
    reason: Annotated[str, typer.Option(help="Why, kept in the alias's history.")] = "by hand",
    storage_option: StorageOption = None,
) -> None:
    """Point an alias at a version (whatever it points at now); the move is kept in its history."""
    parsed = registry.parse_reference(reference)
    if parsed.version is None:
        raise BadInput(f"promote takes NAME:N, not {reference!r}")
    registry.parse_reference(f"{parsed.name}@{alias}")  # the alias name is valid
    moved = registry.set_alias(
        storage_root(storage_option), parsed.name, alias, version=parsed.version,
        by="mlbatch promote", reason=reason,
    )  # fmt: skip
    previous = moved.history[-1]["previous"]
    console.print(f"{parsed.name}@{alias} → version {moved.version} (was {previous or 'unset'})",
                  highlight=False)  # fmt: skip


def predict(
    model: Annotated[str, typer.Option(help="NAME@ALIAS, NAME:N or a run id.")],
    input_uri: Annotated[str, typer.Option("--input", help="Rows to score: .csv or .parquet.")],
    output_uri: Annotated[str, typer.Option("--output", help="Where: .csv or .parquet.")],
    keep: Annotated[
        list[str] | None,
        typer.Option(
            help="Input column to copy next to the predictions (repeat); "
            "default: the spec's id_columns found in the input."
        ),
    ] = None,  # fmt: skip
    storage_option: StorageOption = None,
    on_unparseable: Annotated[
        str,
        typer.Option(help="Numbers that cannot be read: warn (scored as missing) or fail."),
    ] = "warn",
) -> None:
    """Score new raw rows with a registered model or a run's model: its own transformer, then
    the model; the predictions keep the input's key columns."""
    try:  # scikit-learn and the model libraries: only when scoring (the predict extra)
        from mlbatch import scoring
    except ImportError as error:
        raise BadInput(f"mlbatch predict needs the predict extra installed: {error}") from None

    if on_unparseable not in ("warn", "fail"):
        raise BadInput(f"--on-unparseable {on_unparseable}: must be warn or fail")
    from mlbatch.input_checks import check_inputs, unparseable_error
    from mlbatch.notes import input_note

    root = storage_root(storage_option)
    source_uri, target_uri = storage.resolve_uri(input_uri), storage.resolve_uri(output_uri)
    if not target_uri.lower().endswith((".csv", ".parquet")):
        raise BadInput(f"--output {output_uri}: predictions are written as .csv or .parquet")
    rows = scoring.read_rows(source_uri)
    with tempfile.TemporaryDirectory(prefix="mlbatch-predict-") as scratch:
        source = scoring.fetch_model(root, model, Path(scratch))
        scorer = scoring.load_scorer(Path(scratch))
        ids = json.loads((Path(scratch) / "spec.json").read_text()).get("id_columns", [])
    kept = keep if keep is not None else [c for c in ids if c in rows.columns]
    scorer.check_columns(rows.columns)
    quality = check_inputs(scorer.transformer, rows)
    if quality["unparseable"] and on_unparseable == "fail":
        raise unparseable_error(quality, where=input_uri)
    note = input_note(quality)
    if note:  # on stderr: stdout may be piped predictions
        errors.print(f"warning: {note}", highlight=False, markup=False, soft_wrap=True)
    frame = scorer.prediction_frame(rows, keep=kept)
    described = {**scorer.describe(), "model": source, "rows": len(frame),
                 "input_quality": quality}  # fmt: skip
    scoring.write_rows(frame, target_uri, metadata=described)
    where = f"{source['name']}:{source['version']}" if "version" in source else source["run_id"]
    console.print(f"{len(frame)} rows scored by {where} → {target_uri}", highlight=False,
                  soft_wrap=True)  # fmt: skip
    if scorer.task == "binary":
        meaning = f"P({scorer.schema.get('target')} = {scorer.classes[1]})"
        console.print(f"probability = {meaning}; prediction at threshold {scorer.threshold:.4f}",
                      highlight=False)  # fmt: skip


def _key_values(values: dict, *, title: str) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in values.items():
        table.add_row(str(key), f"{value:.4f}" if isinstance(value, float) else str(value))
    return table


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
    app.command()(promote)
    app.command()(predict)
