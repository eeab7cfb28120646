"""The predict stage: score etl's clean table with the model the spec's `predict:` section
names (a registered version, an alias, or a run's model), through that model's own fitted
transformer, and write the predictions with the rows' key columns."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from mlbatch import scoring, storage
from mlbatch.errors import BadInput
from mlbatch.input_checks import review_inputs
from mlbatch.stage import StageContext


def run(ctx: StageContext) -> None:
    settings = ctx.spec.predict
    if settings is None:
        raise BadInput("the predict stage needs a `predict:` section in the spec")
    rows = pd.read_parquet(ctx.fetch("etl", "table.parquet"))
    folder = ctx.work_dir / "model"
    source = scoring.fetch_model(ctx.layout.storage_uri, settings.model, folder)
    ctx.record_external(source["uri"])  # the model used, by URI and version (ETag or mtime)
    scorer = scoring.load_scorer(folder)
    keep = settings.keep_columns or ctx.spec.id_columns
    scorer.check_columns(rows.columns)
    quality = review_inputs(scorer.transformer, rows, on_unparseable=settings.on_unparseable,
                            where="the rows to score (etl's table.parquet)")  # fmt: skip
    frame = scorer.prediction_frame(rows, keep=keep)

    suffix = ".csv" if (settings.output or "").lower().endswith(".csv") else ".parquet"
    metadata = {
        **scorer.describe(),
        "model": source,
        "rows": len(frame),
        "run_id": ctx.layout.run_id,
        "input_quality": quality,
    }
    scoring.write_rows(frame, f"file://{ctx.out_dir / f'predictions{suffix}'}", metadata=metadata)
    if settings.output:
        published = _published_uri(ctx.layout.storage_uri, settings.output)
        scoring.write_rows(frame, published, metadata=metadata)
        metadata["published"] = published
    (ctx.out_dir / "predictions.json").write_text(
        json.dumps(metadata, indent=2, default=str) + "\n"
    )
    shown = f"{source['name']}:{source['version']}" if "version" in source else source["run_id"]
    print(f"[predict] {len(frame)} rows scored by {shown} ({settings.model})")
    ctx.metrics.update(rows=len(frame), model=source, input_quality=quality,
                       **prediction_summary(scorer, frame))  # fmt: skip


def prediction_summary(scorer: scoring.Scorer, frame: pd.DataFrame) -> dict:
    """What the predictions look like: class shares, or the values' mean and spread."""
    if scorer.task == "regression":
        values = frame["prediction"].to_numpy(dtype="float64")
        return {"prediction_mean": float(np.mean(values)), "prediction_std": float(np.std(values))}
    shares = frame["prediction"].astype(str).value_counts(normalize=True)
    return {"predicted_class_shares": {k: round(float(v), 4) for k, v in shares.items()}}


def _published_uri(storage_uri: str, output: str) -> str:
    return output if "://" in output else storage.join(storage_uri, output)
