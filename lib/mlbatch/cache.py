"""The stage cache: reuse a stage committed by an earlier run when nothing it depends on
changed.

key = the stage's resolved config + its inputs' content + its code version. A hit counts
only if the earlier outputs still exist with their hashes; they are then copied
server-side (hard links on file://) into the new run, whose manifest records
`cached_from`, so every run stays self-contained and deletable as a unit.
"""

from __future__ import annotations

import hashlib
import json
import time

from mlbatch import runs, storage
from mlbatch.codeversion import code_version
from mlbatch.logs import CHUNK_NAME
from mlbatch.manifest import Input, Manifest, commit, load_manifest
from mlbatch.runs import RunLayout
from mlbatch.spec import PipelineSpec

CACHE_KEY_ENV = "MLBATCH_CACHE_KEY"  # set by the controller: the key an attempt commits under
SHARED_KEYS = ("target", "task", "known_after_prediction", "id_columns")
# Other stages' settings a stage reads: explore scores columns on features' training rows,
# so features' split decides what explore sees.
BORROWED = {"explore": (("features", "split"),)}


def stage_config(spec: PipelineSpec, stage: str) -> dict:
    """The part of the spec a stage's result depends on (execution settings excluded)."""
    whole = spec.model_dump(mode="json")
    config = {**{k: whole[k] for k in SHARED_KEYS}, stage: whole.get(stage, {})}
    for section, key in BORROWED.get(stage, ()):
        config[f"{section}.{key}"] = whole[section][key]
    return config


def cacheable(spec: PipelineSpec, stage: str) -> bool:
    """False for a stage whose result depends on more than its inputs: evaluate when it
    registers and promotes (the alias it compares against moves; a copy would register
    nothing), and predict scoring with a model by alias (the alias moves)."""
    if stage == "evaluate":
        return not spec.evaluate.registry.enabled
    if stage == "predict" and spec.predict is not None:
        from mlbatch.registry import parse_reference

        return parse_reference(spec.predict.model).alias is None
    return True


def content_digest(manifest: Manifest) -> str:
    """What a stage produced, by content: equal outputs give equal digests in any run."""
    outputs = sorted((path, out.sha256) for path, out in manifest.outputs.items())
    return _digest({"status": manifest.status, "outputs": outputs})


def cache_key(
    *, spec: PipelineSpec, stage: str, upstream: dict[str, Manifest], external: list[Input]
) -> str:
    return _digest({
        "stage": stage,
        "config": stage_config(spec, stage),
        "code_version": code_version(stage),
        "upstream": {name: content_digest(m) for name, m in sorted(upstream.items())},
        "external": sorted((i.uri, i.size, i.version) for i in external),
    })  # fmt: skip


def external_inputs(spec: PipelineSpec, storage_uri: str) -> list[Input]:
    """The raw files etl will read, by URI, size and version (ETag or mtime)."""
    inputs = []
    for source in spec.etl.sources.values():
        location = source.location(storage_uri)
        for info in storage.matching(location):
            inputs.append(
                Input(kind="external", uri=info.uri, size=info.size, version=info.version)
            )
    return inputs


def index_uri(storage_uri: str, stage: str, key: str) -> str:
    return storage.join(storage_uri, "cache", stage, f"{key}.json")


def record(storage_uri: str, manifest: Manifest) -> None:
    """Point the cache at a committed manifest (the latest copy wins)."""
    if manifest.cache_key:
        pointer = {"run_id": manifest.run_id, "stage": manifest.stage, "recorded": time.time()}
        storage.write_bytes(
            index_uri(storage_uri, manifest.stage, manifest.cache_key), json.dumps(pointer).encode()
        )


def find_hit(storage_uri: str, stage: str, key: str) -> tuple[RunLayout, Manifest] | None:
    """The earlier committed stage with this key, if its outputs are intact."""
    try:
        pointer = json.loads(storage.read_bytes(index_uri(storage_uri, stage, key)))
        layout = RunLayout(storage_uri, runs.check_run_id(pointer["run_id"]))
    except (FileNotFoundError, ValueError, KeyError):
        return None
    loaded = load_manifest(layout, stage)
    if loaded is None or loaded[0].cache_key != key:
        return None
    manifest = loaded[0]
    attempt_uri = layout.attempt_uri(stage, manifest.attempt)
    for path, output in manifest.outputs.items():
        uri = storage.join(attempt_uri, path)
        info = storage.stat(uri)
        if info is None or info.size != output.size or storage.sha256_uri(uri) != output.sha256:
            return None
    return layout, manifest


def adopt(
    *,
    layout: RunLayout,
    attempt: str,
    source: tuple[RunLayout, Manifest],
    inputs: list[Input],
) -> Manifest:
    """Copy a cached stage's outputs into this run and commit them as its own."""
    started = time.time()
    source_layout, cached = source
    source_attempt = source_layout.attempt_uri(cached.stage, cached.attempt)
    target_attempt = layout.attempt_uri(cached.stage, attempt)
    for path in cached.outputs:
        storage.copy(storage.join(source_attempt, path), storage.join(target_attempt, path))
    _copy_log(source_layout, cached, layout, attempt)
    manifest = cached.model_copy(
        update={
            "run_id": layout.run_id,
            "attempt": attempt,
            "inputs": inputs,
            "cached_from": cached.cached_from or source_layout.run_id,
            "started": started,  # the copy; `profile` stays the work's that made the outputs
            "finished": time.time(),
        }
    )
    if commit(layout, manifest):
        record(layout.storage_uri, manifest)
    return load_manifest(layout, cached.stage)[0]


def _copy_log(source_layout: RunLayout, cached: Manifest, layout: RunLayout, attempt: str) -> None:
    """The log of the work that made the outputs, then a line saying where it came from."""
    source_prefix = source_layout.log_prefix(cached.stage, cached.attempt)
    target_prefix = layout.log_prefix(cached.stage, attempt)
    chunks = storage.list_uris(source_prefix)
    for uri in chunks:
        storage.copy(uri, storage.join(target_prefix, uri[len(source_prefix) + 1 :]))
    note = (
        f"[mlbatch] {cached.stage} attempt {attempt} of run {layout.run_id}: outputs committed "
        f"from the cache (run {source_layout.run_id}, attempt {cached.attempt}; its log above)\n"
    )
    storage.write_bytes(storage.join(target_prefix, CHUNK_NAME.format(len(chunks))), note.encode())


def _digest(value) -> str:
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(data).hexdigest()[:32]
