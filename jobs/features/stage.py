"""The features stage: split first, then choose and fit the preparation on the training
rows only; write the prepared and raw splits, the folds, the split itself, the fitted
transformer, feature_schema.json and a report."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlbatch import preprocessing
from mlbatch.errors import BadInput
from mlbatch.splitting import Split, encode_target, split_rows
from mlbatch.stage import StageContext
from mlbatch_jobs.features import columns, prepare, report
from mlbatch_jobs.features.prepare import ROW_ID, TARGET
from mlbatch_jobs.features.treatment import choose


def run(ctx: StageContext) -> None:
    spec = ctx.spec
    schema = _read_json(ctx.fetch("etl", "schema.json"), "etl's schema.json")
    advice = _read_json(ctx.fetch("explore", "advice.json"), "explore's advice.json")
    table_file = ctx.fetch("etl", "table.parquet")
    table = read_table(table_file)
    task = schema["task"]
    if spec.target not in table:
        raise BadInput(f"target {spec.target!r} is not a column of etl's table")
    columns.check_names(spec, table.columns)
    excluded = columns.exclusions(table, schema, spec, advice)
    columns.check_crosses(spec, excluded)
    candidates = [c for c in table.columns if c not in excluded]
    if not candidates:
        raise BadInput("no column is left to use as a feature: " + json.dumps(excluded))
    kinds, kind_reasons = columns.kinds(table, candidates, spec, advice)
    for column, reason in excluded.items():
        print(f"[features] not a feature: {column} ({reason})")
    # Explore's suspected leaks that are features: evaluate's report names the ones the
    # model uses.
    leaks = [leak for leak in advice.get("suspected_leaks", []) if leak["column"] in kinds]
    for leak in leaks:
        print(
            f"[features] warning: {leak['column']} is a feature although alone it predicts "
            f"the target with {leak['metric']} {leak['power']:.3f} (a suspected leak)"
        )

    labels, classes = encode_target(table[spec.target], task)
    split = split_rows(table, labels, task, spec.features.split)
    if "folds_chosen" in split.rule:
        print(f"[features] CV folds: {split.rule['folds_chosen']}")
    if classes is not None and len(np.unique(labels[split.rows["train"]])) < 2:
        raise BadInput("the training split holds a single class: nothing to learn from it")
    train = split.rows["train"]
    candidates_train = prepare.rows_of(table, list(kinds), train)  # crosses are of kinds
    plan, choices = choose(candidates_train, kinds, spec.features, task=task,
                           seed=spec.features.split.seed)  # fmt: skip
    del candidates_train  # the fit takes its own copy of the columns it reads
    for choice in choices:
        if choice.column in kind_reasons:
            choice.why.insert(0, kind_reasons[choice.column])

    out = ctx.out_dir
    inputs = prepare.rows_of(table, prepare.input_columns(plan), train)
    # The fit needs only these rows; without etl's whole table beside them, the fit's peak
    # is that much lower. Reading the table again costs about 0.4 CPU-seconds a million rows.
    del table
    release_arrow_memory()
    fitted = write_fitted(out / "splits", plan, inputs, labels, train)
    del inputs
    preprocessing.save_transformer(fitted.transformer, out / "transformer.skops")
    table = read_table(table_file)
    write_transformed(out / "splits", fitted, table, labels, split.rows)
    for name, positions in split.rows.items():
        _write(raw_rows(table, positions), out / "raw" / f"{name}.parquet")
    _write(split_table(split, len(table)), out / "split.parquet")
    folds = write_folds(out, plan, table, labels, split) if split.folds else None

    features = fitted.features
    feature_schema = {
        "task": task, "target": spec.target, "target_column": TARGET, "row_id": ROW_ID,
        "classes": classes, "features": features, "excluded": excluded,
        "inputs": {
            "numeric": plan.numeric, "categorical": plan.categorical, "dates": list(plan.dates),
            "crosses": plan.crosses,
        },
        "treatments": {c.column: {"kind": c.kind, **c.treatment, "why": c.why} for c in choices},
        "split": split.rule | {"rows": {n: len(r) for n, r in split.rows.items()},
                               "file": "split.parquet"},
        "folds": "folds.json" if folds else None,
        "reduction": _reduction(fitted.transformer, fitted.before_reduction, len(features)),
        "advice": {"applied": spec.features.apply_advice, "kept_by_spec": spec.features.keep,
                   "suspected_leaks": leaks},
    }  # fmt: skip
    (out / "feature_schema.json").write_text(json.dumps(feature_schema, indent=2) + "\n")
    title = f"{spec.name}: features ({ctx.layout.run_id})"
    page = report.render_report(feature_schema, choices, split, folds, title=title)
    (out / "report.html").write_text(page, encoding="utf-8")

    ctx.metrics.update(
        {f"{name}_rows": len(rows) for name, rows in split.rows.items()},
        features=len(features), inputs=len(candidates), excluded=len(excluded),
        split=split.rule | {"row_ids_sha256": row_id_hashes(split), "file": "split.parquet"},
    )  # fmt: skip
    if classes is not None:
        for name, rows in split.rows.items():
            ctx.metrics[f"{name}_class_shares"] = class_shares(labels[rows], len(classes))
    print(f"[features] {len(candidates)} input columns -> {len(features)} features; "
          f"splits {[len(r) for r in split.rows.values()]}")  # fmt: skip


def read_table(path: Path) -> pd.DataFrame:
    """etl's table, each column a block of its own: taking a few columns' rows then copies
    those columns only. Arrow's buffers are freed as their columns are converted."""
    table = pq.read_table(path).to_pandas(split_blocks=True, self_destruct=True)
    release_arrow_memory()
    return table


def release_arrow_memory() -> None:
    """Hand back to the system what Arrow's allocator freed (decoding buffers, a dropped
    table's strings): it keeps freed pages for reuse, and numpy never reuses them."""
    pa.default_memory_pool().release_unused()


def class_shares(labels: np.ndarray, n_classes: int) -> list[float]:
    counts = np.bincount(labels, minlength=n_classes)
    return [round(float(c) / max(len(labels), 1), 4) for c in counts]


def split_table(split: Split, rows: int) -> pd.DataFrame:
    """Every row id with its split and the CV fold it validates (-1: none)."""
    names = np.empty(rows, dtype=object)
    fold = np.full(rows, -1, dtype="int32")
    for name, positions in split.rows.items():
        names[positions] = name
    for i, pair in enumerate(split.folds):
        fold[pair["valid"]] = i
    return pd.DataFrame({ROW_ID: np.arange(rows, dtype="int64"), "split": names, "fold": fold})


def row_id_hashes(split: Split) -> dict[str, str]:
    """sha256 of each split's sorted row ids (int64, little-endian): the split's fingerprint."""
    return {
        name: hashlib.sha256(np.sort(rows).astype("<i8").tobytes()).hexdigest()
        for name, rows in split.rows.items()
    }


def write_prepared(
    folder: Path, plan, table: pd.DataFrame, labels: np.ndarray, rows: dict[str, np.ndarray]
) -> prepare.Fitted:
    """Fit on rows["train"] and write each split's prepared rows to <folder>/<name>.parquet."""
    inputs = prepare.rows_of(table, prepare.input_columns(plan), rows["train"])
    fitted = write_fitted(folder, plan, inputs, labels, rows["train"])
    del inputs
    write_transformed(folder, fitted, table, labels, rows)
    return fitted


def write_fitted(
    folder: Path, plan, inputs: pd.DataFrame, labels: np.ndarray, train: np.ndarray
) -> prepare.Fitted:
    """Fit on the training rows' inputs; write their prepared rows to <folder>/train.parquet."""
    fitted, frame = prepare.fit(plan, inputs, labels, train)
    _write(frame, folder / "train.parquet")
    return fitted


def write_transformed(
    folder: Path, fitted: prepare.Fitted, table: pd.DataFrame, labels: np.ndarray,
    rows: dict[str, np.ndarray],
) -> None:  # fmt: skip
    """Every split but train prepared by the fitted transformer, one in memory at a time."""
    for name, positions in rows.items():
        if name != "train":
            _write(prepare.transform(fitted, table, labels, positions), folder / f"{name}.parquet")


def raw_rows(table: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """A split's rows as etl wrote them, after their row ids."""
    raw = table.iloc[positions].reset_index(drop=True)
    raw.insert(0, ROW_ID, positions.astype("int64"))
    return raw


def write_folds(out: Path, plan, table: pd.DataFrame, labels: np.ndarray, split: Split) -> dict:
    """Per fold, a transformer fitted on that fold's training rows only, and its splits."""
    folds = []
    for i, pair in enumerate(split.folds):
        fitted = write_prepared(out / "folds" / str(i), plan, table, labels, pair)
        entry = {"fold": i}
        for name, positions in pair.items():
            entry.update({name: f"folds/{i}/{name}.parquet", f"{name}_rows": len(positions)})
        entry["features"] = [f["name"] for f in fitted.features]
        folds.append(entry)
    listing = {"k": len(folds), "strategy": split.rule["strategy"], "folds": folds}
    (out / "folds.json").write_text(json.dumps(listing, indent=2) + "\n")
    return listing


def _reduction(transformer, before: int, after: int) -> dict:
    """What an optional selection or PCA kept, with the scores that decided it."""
    if "reduce" not in transformer.named_steps:
        return {"method": "none", "before": before, "after": after}
    reduce = transformer.named_steps["reduce"]
    return {
        "method": reduce.method, "before": before, "after": after, "kept": reduce.kept_,
        "scores": reduce.scores_,
    }  # fmt: skip


def _write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BadInput(f"{what} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{what} is not a JSON object")
    return data
