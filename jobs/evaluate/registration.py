"""Register the evaluated model: train's model files, features' transformer and schema, the
run's spec and evaluate's metrics, with the lineage back to the data manifests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mlbatch import registry, runs, storage
from mlbatch.manifest import Manifest, output_uri
from mlbatch.stage import StageContext


def register_model(
    ctx: StageContext, name: str, *, record: dict, metrics_file: Path,
    earlier: dict[str, tuple[Manifest, str]],
) -> dict:  # fmt: skip
    """The version record (a retried evaluate of this run finds its own version again)."""
    layout = ctx.layout
    files: dict[str, registry.Artifact] = {}
    train = ctx.upstream("train")
    for path in (p for p in train.outputs if p.startswith("model/")):
        files[path] = _stored(output_uri(layout, train, path), train, path)
    features = ctx.upstream("features")
    for path in ("transformer.skops", "feature_schema.json"):
        files[path] = _stored(output_uri(layout, features, path), features, path)
    spec_uri = runs.spec_file_uri(layout, runs.attempt_spec_name())  # what this run used
    spec = storage.read_bytes(spec_uri)
    files["spec.json"] = registry.Artifact(spec_uri, hashlib.sha256(spec).hexdigest(), len(spec))
    files["metrics.json"] = registry.Artifact(
        metrics_file, storage.sha256_file(metrics_file), metrics_file.stat().st_size
    )
    manifests = {i.uri: i.sha256 for i in ctx.inputs if i.kind == "manifest"}
    manifests.update({layout.manifest_uri(stage): digest for stage, (_, digest) in earlier.items()})
    etl = earlier.get("etl")
    lineage = {
        "run_uri": layout.uri,
        "manifests": manifests,
        "raw_inputs": [i.model_dump(exclude_none=True) for i in etl[0].inputs
                       if i.kind == "external"] if etl else [],
    }  # fmt: skip
    return registry.register(
        layout.storage_uri, name, run_id=layout.run_id, files=files,
        record={**record, "lineage": lineage},
    )  # fmt: skip


def _stored(uri: str, manifest: Manifest, path: str) -> registry.Artifact:
    output = manifest.outputs[path]
    return registry.Artifact(uri, output.sha256, output.size)
