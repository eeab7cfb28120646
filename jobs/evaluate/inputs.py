"""What evaluate reads from earlier stages: train's model, features' splits and schema, and
the summaries of etl and explore for the report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mlbatch import scoring
from mlbatch.errors import BadInput
from mlbatch.manifest import Manifest, load_manifest
from mlbatch.stage import StageContext


def trained_model(ctx: StageContext) -> scoring.TrainedModel:
    """Train's model, every file under model/ fetched next to model_info.json."""
    train = ctx.upstream("train")
    for path in (p for p in train.outputs if p.startswith("model/")):
        ctx.fetch("train", path)
    return scoring.load_model(ctx.fetch("train", "model/model_info.json").parent)


def read_json_output(ctx: StageContext, stage: str, path: str) -> dict | None:
    """An upstream JSON output, or None when that stage did not write it."""
    if path not in ctx.upstream(stage).outputs:
        return None
    return json.loads(ctx.fetch(stage, path).read_text())


def read_trials(ctx: StageContext) -> tuple[pd.DataFrame, dict] | None:
    """train's trials.parquet and its ranking ({metric, mode}), None if it wrote none."""
    if "trials.parquet" not in ctx.upstream("train").outputs:
        return None
    table = pq.read_table(ctx.fetch("train", "trials.parquet"))
    ranking = json.loads((table.schema.metadata or {}).get(b"mlbatch", b"{}"))
    return table.to_pandas(), ranking


def split_arrays(frame: pd.DataFrame, features: list[str], target: str, split: str):
    """The model's columns in its order, and the encoded target; BadInput if any is missing."""
    missing = [c for c in [*features, target] if c not in frame.columns]
    if missing:
        raise BadInput(f"the {split} split lacks columns the model needs: {missing[:5]}")
    if frame.empty:
        raise BadInput(f"the {split} split has no rows")
    return frame[features].to_numpy(dtype="float64"), frame[target].to_numpy()


def raw_rows(ctx: StageContext, split: str, row_ids: np.ndarray, row_id: str) -> pd.DataFrame:
    """The untransformed rows of a split, in the order of row_ids (the prepared split's)."""
    raw = pd.read_parquet(ctx.fetch("features", f"raw/{split}.parquet"))
    return raw.set_index(row_id).loc[row_ids].reset_index()


def earlier_manifests(ctx: StageContext) -> dict[str, tuple[Manifest, str]]:
    """etl's and explore's manifests with their hashes, for the report and the lineage.

    They are read through features' record of them (their hashes must be the ones features
    consumed), so they add nothing to evaluate's own inputs: features' manifest already
    stands for them.
    """
    recorded = {i.uri: i.sha256 for i in ctx.upstream("features").inputs if i.kind == "manifest"}
    found = {}
    for stage in ("etl", "explore"):
        loaded = load_manifest(ctx.layout, stage)
        if loaded is not None and recorded.get(ctx.layout.manifest_uri(stage)) == loaded[1]:
            found[stage] = loaded
    return found


def suspected_leaks(schema: dict, model_features: list[str]) -> list[dict]:
    """Explore's suspected leaks (kept as features) that feed the model's own features."""
    used = set(model_features)
    sources = {s for f in schema["features"] if f["name"] in used
               for s in f.get("sources") or [f["source"]]}  # fmt: skip
    leaks = (schema.get("advice") or {}).get("suspected_leaks") or []
    return [leak for leak in leaks if leak["column"] in sources]
