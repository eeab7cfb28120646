"""Mirror a run in MLflow, from what its run folder holds.

The run is one MLflow run (tagged with the mlbatch run id, so a resume or `mlbatch
mlflow-sync` finds it again) in the experiment named after the spec; each committed stage is
exported once (a tag records the manifest it came from), each Tune trial is a nested run
found again by its own tag, and a registered version is found again by its run, so
mirroring twice logs nothing twice.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from mlbatch import mlflow_content, registry, storage
from mlbatch.manifest import Manifest, load_manifest, output_uri
from mlbatch.runs import RunLayout
from mlbatch.spec import PipelineSpec

RUN_TAG = "mlbatch.run_id"
EXPORTED_TAG = "mlbatch.exported."  # + stage: the sha256 of the manifest it came from
TRIAL_TAG = "mlbatch.trial"
VERSION_TAG = "mlbatch.version"
# MLflow's HTTP client waits 120 s a request and retries 7 times with backoff (minutes) by
# default; a run must not wait that long for a mirror. And it prints a link on stdout for
# every run it ends, which `--output json` keeps for its JSON. Variables already set win.
CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
RUN_STATUS = {"succeeded": "FINISHED", "rejected": "FAILED", "failed": "FAILED",
              "cancelled": "KILLED"}  # fmt: skip


class MlflowExport:
    """Brings one MLflow run up to date with one mlbatch run (mlflow_tracking.py calls it
    from its worker thread and counts what fails)."""

    def __init__(self, layout: RunLayout, spec: PipelineSpec, *, uri: str, experiment: str):
        self.layout, self.spec, self.uri, self.experiment = layout, spec, uri, experiment
        self.client = None
        self.experiment_id: str | None = None
        self.run_id: str | None = None  # the MLflow run, once found or created
        self.exported: dict[str, str] = {}  # stage -> manifest sha256 already mirrored

    def sync(self, state: dict, *, final: bool) -> None:
        """Mirror every committed stage not mirrored yet; when final, how the run ended.

        state: run.json's `created`, `stages`, `spec`, and when final `state`, `finished`.
        """
        client = self._client()
        if self.run_id is None:
            self._open_run(client, state, reopen=not final)
        for stage in state.get("stages", {}):
            loaded = load_manifest(self.layout, stage)
            if loaded is not None and self.exported.get(stage) != loaded[1]:
                self._export_stage(client, *loaded)
        if final and state.get("state") in RUN_STATUS:
            client.set_tag(self.run_id, "mlbatch.state", state["state"])
            client.set_terminated(self.run_id, RUN_STATUS[state["state"]],
                                  end_time=_ms(state.get("finished") or time.time()))  # fmt: skip

    def _client(self):
        if self.client is None:
            for variable, value in CLIENT_DEFAULTS.items():
                os.environ.setdefault(variable, value)
            try:
                from mlflow import MlflowClient  # only when a run is mirrored: a heavy import
            except ImportError:
                raise RuntimeError(
                    "the MLflow client is not installed: pip install 'mlbatch-suite[mlflow]'"
                ) from None

            self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        return self.client

    def _open_run(self, client, state: dict, *, reopen: bool) -> None:
        """Find the run by its tag, or create it with the spec as parameters."""
        experiment = client.get_experiment_by_name(self.experiment)
        self.experiment_id = (
            experiment.experiment_id if experiment else client.create_experiment(self.experiment)
        )
        found = client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{RUN_TAG}` = '{self.layout.run_id}'"
        )
        if found:
            run = found[0]
            self.run_id = run.info.run_id
            self.exported = {
                key.removeprefix(EXPORTED_TAG): value
                for key, value in run.data.tags.items() if key.startswith(EXPORTED_TAG)
            }  # fmt: skip
            if reopen and run.info.status != "RUNNING":
                client.update_run(self.run_id, status="RUNNING")  # resumed
            existing = run.data.params
        else:
            tags = {RUN_TAG: self.layout.run_id, "mlbatch.run_uri": self.layout.uri,
                    "mlbatch.spec": self.spec.name, "mlflow.source.name": "mlbatch",
                    "mlflow.note.content": self.spec.description}  # fmt: skip
            run = client.create_run(self.experiment_id, start_time=_ms(state.get("created")),
                                    tags=tags, run_name=self.layout.run_id)  # fmt: skip
            self.run_id, existing = run.info.run_id, {}
        self._log_params(client, existing, state.get("spec", "spec.json"))

    def _log_params(self, client, existing: dict, spec_name: str) -> None:
        """The spec's parameters; after a resume that edited the spec, each changed value
        again as `<revision>/<key>` (MLflow parameters never change)."""
        from mlflow.entities import Param

        params = mlflow_content.spec_params(self.spec.model_dump(mode="json"))
        missing = {}
        for key, value in params.items():
            revised = f"{spec_name}/{key}"[: mlflow_content.NAME_LIMIT]  # spec.<n>.json/...
            if key not in existing:
                missing[key] = value
            elif existing[key] != value and revised not in existing:
                missing[revised] = value
        items = [Param(k, v) for k, v in missing.items()]
        for part in mlflow_content.chunks(items, mlflow_content.BATCH_PARAMS):
            client.log_batch(self.run_id, params=part)

    def _export_stage(self, client, manifest: Manifest, digest: str) -> None:
        stage, at = manifest.stage, _ms(manifest.finished)
        evaluation = None
        if stage == "evaluate" and "metrics.json" in manifest.outputs:
            evaluation = json.loads(self._read(manifest, "metrics.json"))
        numbers = mlflow_content.stage_metrics(
            stage, manifest.metrics, manifest.profile.model_dump(), evaluation
        )
        self._log_metrics(client, self.run_id, numbers, at=at)
        with tempfile.TemporaryDirectory(prefix="mlbatch-mlflow-") as scratch:
            folder = Path(scratch)
            if stage == "train" and "trials.parquet" in manifest.outputs:
                import pyarrow.parquet as pq

                table = pq.read_table(self._fetch(manifest, "trials.parquet", folder))
                self._export_trials(client, mlflow_content.trials(table), at=at)
            for path in mlflow_content.stage_artifacts(stage, list(manifest.outputs)):
                local = self._fetch(manifest, path, folder)
                where = str(Path(stage, path).parent)
                client.log_artifact(self.run_id, str(local), artifact_path=where)
            if stage == "evaluate" and "promotion.json" in manifest.outputs:
                decision = json.loads(self._read(manifest, "promotion.json"))
                self._register(client, decision, folder / "registered")
        client.set_tag(self.run_id, EXPORTED_TAG + stage, digest)
        self.exported[stage] = digest

    def _export_trials(self, client, trials: list[mlflow_content.Trial], *, at: int) -> None:
        """Each trial a nested run, created once: a rerun finds it by its tag."""
        from mlflow.entities import Param

        children = client.search_runs(
            [self.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{self.run_id}'"
        )
        done = {run.data.tags.get(TRIAL_TAG) for run in children}
        for trial in trials:
            if trial.key in done:
                continue
            tags = {**trial.tags, "mlflow.parentRunId": self.run_id}
            child = client.create_run(self.experiment_id, start_time=at, tags=tags,
                                      run_name=trial.run_name).info.run_id  # fmt: skip
            items = [Param(k, v) for k, v in trial.params.items()]
            for part in mlflow_content.chunks(items, mlflow_content.BATCH_PARAMS):
                client.log_batch(child, params=part)
            self._log_metrics(client, child, trial.metrics, at=at, curves=trial.curves)
            client.set_terminated(child, "FINISHED" if trial.tags["mlbatch.status"] == "ok"
                                  else "KILLED", end_time=at)  # fmt: skip

    def _register(self, client, decision: dict, folder: Path) -> None:
        """The version mlbatch registered, with its files as mlbatch stores them (model in
        its native format, transformer in skops: no pickle), and the alias when mlbatch's
        alias points at it now."""
        if decision.get("version") is None:
            return  # a failed gate, or the registry off: nothing was registered
        name, version = decision["registry"], decision["version"]
        from mlflow.exceptions import MlflowException

        found = client.search_model_versions(f"name = '{name}' and run_id = '{self.run_id}'")
        if found:
            mirrored = found[0]
        else:
            root = self.layout.storage_uri
            record = registry.version_record(root, name, version)
            registry.download_version(root, record, folder)
            client.log_artifacts(self.run_id, str(folder), artifact_path="model")
            try:
                client.create_registered_model(name, tags={"mlbatch.registry": root})
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            tags = {VERSION_TAG: str(version), RUN_TAG: self.layout.run_id,
                    "mlbatch.model_family": str(record.get("model_family"))}  # fmt: skip
            mirrored = client.create_model_version(
                name, f"runs:/{self.run_id}/model", run_id=self.run_id, tags=tags,
                description=f"mlbatch {name}:{version}, the source of truth: "
                f"{registry.version_uri(root, name, version)}",
                await_creation_for=0,  # the version is ready at once on a tracking server
            )  # fmt: skip
        alias = registry.read_alias(self.layout.storage_uri, name, decision["alias"])
        if alias is not None and alias.version == version:
            client.set_registered_model_alias(name, decision["alias"], mirrored.version)

    def _log_metrics(self, client, run_id: str, values: dict[str, float], *, at: int,
                     curves: dict[str, list[tuple[int, float]]] | None = None) -> None:  # fmt: skip
        """Fixed timestamps (the stage's end): metrics logged again are the same points."""
        from mlflow.entities import Metric

        items = [Metric(key, value, at, 0) for key, value in values.items()]
        for key, points in (curves or {}).items():
            items += [Metric(key, value, at, step) for step, value in points]
        for part in mlflow_content.chunks(items, mlflow_content.BATCH_METRICS):
            client.log_batch(run_id, metrics=part)

    def _read(self, manifest: Manifest, path: str) -> bytes:
        return storage.read_bytes(output_uri(self.layout, manifest, path))

    def _fetch(self, manifest: Manifest, path: str, folder: Path) -> Path:
        """A committed output as a local file (the file itself on file:// storage)."""
        uri = output_uri(self.layout, manifest, path)
        local = storage.local_path(uri)
        if local is None:
            local = folder / manifest.stage / path
            storage.download_file(uri, local)
        return local


def _ms(seconds: float | None) -> int:
    return int((seconds or time.time()) * 1000)
