"""A features stage's outputs as docs/stage-contract.md lays them out, and a file:// run to
commit them in, for tests of the stages downstream of features."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import skops.io
from sklearn.impute import SimpleImputer

from mlbatch import storage
from mlbatch.manifest import Manifest, OutputFile, Profile, commit
from mlbatch.runs import RunLayout, new_run_id, write_spec

TASKS = ("binary", "multiclass", "regression")
CARRIERS = ["AA", "B6", "DL", "UA"]
SPLITS = {"train": 0.7, "valid": 0.2, "test": 0.1}


def raw_table(task: str, rows: int, seed: int) -> pd.DataFrame:
    """Raw rows with a learnable target: numbers with gaps, and a string category."""
    rng = np.random.default_rng(seed)
    distance = rng.gamma(2.0, 500.0, rows)
    hour = rng.integers(5, 23, rows).astype("float64")
    temp = rng.normal(15, 10, rows)
    carrier = rng.choice(CARRIERS, rows).astype(object)
    signal = (
        (distance - 1000) / 700 + (hour - 14) / 5
        + np.select([carrier == "B6", carrier == "UA"], [1.0, -1.0], 0.0)
    )  # fmt: skip
    noise = rng.normal(0, 0.5, rows)
    if task == "binary":
        target = pd.Series(signal + noise > 0.3)
    elif task == "multiclass":
        levels = np.select([signal + noise < -0.5, signal + noise < 0.7], ["low", "mid"], "high")
        target = pd.Series(levels)
    else:
        target = pd.Series(20 * signal + 5 * noise)
    distance[rng.random(rows) < 0.05] = np.nan
    carrier[rng.random(rows) < 0.05] = None
    return pd.DataFrame(
        {"distance": distance, "hour": hour, "temp": temp, "carrier": carrier, "y": target}
    )


def write_features_outputs(
    folder: Path, task: str, *, rows: int = 600, seed: int = 0, folds: int = 0
) -> dict:
    """splits/, raw/, feature_schema.json and transformer.skops under folder (and k folds as
    features writes them, the last one being the train/valid split); the schema."""
    table = raw_table(task, rows, seed)
    order = np.random.default_rng(seed + 1).permutation(rows)
    ends = np.cumsum([round(share * rows) for share in SPLITS.values()])[:-1]
    splits = dict(zip(SPLITS, np.split(order, ends), strict=True))

    numeric = ["distance", "hour", "temp"]
    imputer = SimpleImputer(strategy="median").fit(table.loc[splits["train"], numeric])
    known = sorted(table.loc[splits["train"], "carrier"].dropna().unique())
    classes = None if task == "regression" else sorted(table["y"].unique().tolist())

    (folder / "splits").mkdir(parents=True, exist_ok=True)
    (folder / "raw").mkdir(parents=True, exist_ok=True)

    def prepare(rows_of_split: np.ndarray) -> pd.DataFrame:
        part = table.iloc[rows_of_split]
        prepared = pd.DataFrame(imputer.transform(part[numeric]), columns=numeric)
        codes = part["carrier"].map({c: i for i, c in enumerate(known)})
        prepared["carrier"] = codes.fillna(-1).to_numpy(dtype="int32")  # -1: missing or unseen
        prepared.insert(0, "__row_id", rows_of_split.astype("int64"))
        target = part["y"] if classes is None else part["y"].map(classes.index)
        prepared["__target"] = target.to_numpy(dtype="float64" if classes is None else "int64")
        return prepared

    for name, rows_of_split in splits.items():
        prepare(rows_of_split).to_parquet(folder / "splits" / f"{name}.parquet")
        part = table.iloc[rows_of_split]
        raw = part.reset_index(drop=True)
        raw.insert(0, "__row_id", rows_of_split.astype("int64"))
        raw.to_parquet(folder / "raw" / f"{name}.parquet")
    skops.io.dump(imputer, folder / "transformer.skops")

    schema = {
        "task": task, "target": "y", "target_column": "__target", "row_id": "__row_id",
        "classes": [bool(c) if task == "binary" else c for c in classes] if classes else None,
        "features": [
            *({"name": c, "kind": "numeric", "source": c} for c in numeric),
            {"name": "carrier", "kind": "categorical", "source": "carrier"},
        ],
        "excluded": {"y": "target"},
    }  # fmt: skip
    if folds:
        schema["folds"] = "folds.json"
        write_folds(folder, prepare, splits, folds, [f["name"] for f in schema["features"]])
    (folder / "feature_schema.json").write_text(json.dumps(schema, indent=2))
    return schema


def write_folds(folder: Path, prepare, splits: dict, k: int, features: list[str]) -> None:
    """folds.json and folds/<i>/{train,valid}.parquet; the last fold is train/valid itself."""
    rest = np.concatenate([splits["train"], splits["valid"]])
    chunks = np.array_split(rest, k)
    pairs = [(np.setdiff1d(rest, chunk), chunk) for chunk in chunks[:-1]]
    pairs.append((splits["train"], splits["valid"]))
    entries = []
    for i, (train, valid) in enumerate(pairs):
        entry = {"fold": i, "features": features}
        for name, rows_of_fold in (("train", train), ("valid", valid)):
            path = f"folds/{i}/{name}.parquet"
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            prepare(np.sort(rows_of_fold)).to_parquet(folder / path)
            entry.update({name: path, f"{name}_rows": len(rows_of_fold)})
        entries.append(entry)
    listing = {"k": k, "strategy": "random", "folds": entries}
    (folder / "folds.json").write_text(json.dumps(listing, indent=2))


def new_file_run(root: Path, *, train: dict | None = None) -> RunLayout:
    """A run with a minimal valid spec.json under root (file:// storage)."""
    layout = RunLayout(storage_uri=storage.resolve_uri(str(root)), run_id=new_run_id())
    spec = {
        "name": "unit", "target": "y",
        "etl": {"sources": {"table": {"uri": "table.csv"}}},
        "train": train or {"num_samples": 2, "time_budget_s": 20},
    }  # fmt: skip
    write_spec(layout, spec)
    return layout


def attempt_folder(layout: RunLayout, stage: str, attempt: str) -> Path:
    return storage.local_path(layout.attempt_uri(stage, attempt))


def commit_attempt(layout: RunLayout, stage: str, attempt: str) -> Manifest:
    """Commit everything in a file:// attempt folder as the stage's outputs."""
    folder = attempt_folder(layout, stage, attempt)
    outputs = {
        path.relative_to(folder).as_posix(): OutputFile(
            size=path.stat().st_size, sha256=storage.sha256_file(path)
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    return commit_outputs(layout, stage, attempt, outputs)


def commit_outputs(
    layout: RunLayout, stage: str, attempt: str, outputs: dict[str, OutputFile]
) -> Manifest:
    """Commit a succeeded stage whose attempt holds these outputs."""
    now = time.time()
    manifest = Manifest(
        run_id=layout.run_id, stage=stage, attempt=attempt, status="succeeded", exit_code=0,
        code_version="test", config_hash="test", outputs=outputs,
        profile=Profile(wall_s=0.0, cpu_s=0.0, peak_rss_mb=0.0), started=now, finished=now,
    )  # fmt: skip
    assert commit(layout, manifest), f"{stage} was already committed"
    return manifest


def committed_features(
    root: Path, task: str, *, train: dict | None = None, folds: int = 0
) -> RunLayout:
    """A run whose features stage committed realistic outputs for task."""
    layout = new_file_run(root, train=train)
    write_features_outputs(attempt_folder(layout, "features", "1-aaaa"), task, folds=folds)
    commit_attempt(layout, "features", "1-aaaa")
    return layout
