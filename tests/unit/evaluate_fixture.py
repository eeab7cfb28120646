"""Runs whose features and train stages committed real outputs (the library's transformer,
models in their native formats), for the tests of evaluate, the registry and predict. No
tests here.

Each run has its own data seed and model settings, so two runs make two different models
over the same raw columns: one a champion, the other a challenger.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from features_fixture import attempt_folder, commit_attempt, commit_outputs, raw_table

from mlbatch import preprocessing, storage
from mlbatch.manifest import OutputFile
from mlbatch.runs import RunLayout, new_run_id, write_spec
from mlbatch.tasks import TUNING_METRIC

SPLIT_SHARES = (0.6, 0.2, 0.2)


def new_run(root: str, *, name: str = "unit", extra: dict | None = None) -> RunLayout:
    """A run under root (a storage URI) with a minimal spec plus `extra` sections."""
    time.sleep(0.001)  # run ids carry the second and 6 random hex digits; keep them apart
    layout = RunLayout(storage_uri=root, run_id=new_run_id())
    spec = {"name": name, "target": "y", "etl": {"sources": {"table": {"uri": "table.csv"}}}}
    write_spec(layout, {**spec, **(extra or {})})
    return layout


def fit_transformer(task: str, train: pd.DataFrame, labels: np.ndarray):
    numeric = [c for c in train.columns if c not in ("carrier", "y")]
    plan = preprocessing.TransformerPlan(
        task=task, numeric=numeric, categorical=["carrier"], dates={}, crosses=[],
        impute={c: "median" for c in numeric}, indicators=["distance"],
        encoding={"carrier": "codes"}, rare_min_count=1,
    )  # fmt: skip
    return preprocessing.build_transformer(plan).fit(train, labels)


def encode(task: str, target: pd.Series) -> tuple[np.ndarray, list | None]:
    if task == "regression":
        return target.to_numpy(dtype="float64"), None
    classes = sorted(target.unique().tolist())
    return target.map(classes.index).to_numpy(dtype="int64"), [_plain(c) for c in classes]


def write_features(
    folder: Path, task: str, *, rows: int, seed: int, rename: dict | None = None
) -> dict:
    """features' outputs for a raw table: splits/, raw/, transformer.skops, feature_schema.json."""
    table = raw_table(task, rows, seed).rename(columns=rename or {})
    labels, classes = encode(task, table["y"])
    order = np.random.default_rng(seed).permutation(rows)
    ends = (np.cumsum(SPLIT_SHARES)[:-1] * rows).astype(int)
    positions = dict(zip(("train", "valid", "test"), np.split(order, ends), strict=True))
    transformer = fit_transformer(task, table.iloc[positions["train"]], labels[positions["train"]])
    categorical = ["carrier"]
    for name, rows_of_split in positions.items():
        prepared = preprocessing.transform(transformer, table.iloc[rows_of_split], categorical)
        prepared = prepared.reset_index(drop=True)
        prepared.insert(0, "__row_id", rows_of_split.astype("int64"))
        prepared["__target"] = labels[rows_of_split]
        _parquet(prepared, folder / "splits" / f"{name}.parquet")
        raw = table.iloc[rows_of_split].reset_index(drop=True)
        raw.insert(0, "__row_id", rows_of_split.astype("int64"))
        _parquet(raw, folder / "raw" / f"{name}.parquet")
    preprocessing.save_transformer(transformer, folder / "transformer.skops")
    names = [c for c in prepared.columns if c not in ("__row_id", "__target")]
    schema = {
        "task": task, "target": "y", "target_column": "__target", "row_id": "__row_id",
        "classes": classes,
        "features": [{"name": n, "kind": "categorical" if n in categorical else "numeric",
                      "source": n.removeprefix("missingindicator_")} for n in names],
        "excluded": {"y": "target"},
    }  # fmt: skip
    (folder / "feature_schema.json").write_text(json.dumps(schema, indent=2))
    return schema


def write_train(folder: Path, features: Path, task: str, *, family: str, config: dict) -> None:
    """train's outputs as docs/stage-contract.md lays them out: the model in its native
    format (or skops), model_info.json, trials.parquet and leaderboard.json."""
    schema = json.loads((features / "feature_schema.json").read_text())
    names = [f["name"] for f in schema["features"]]
    splits = {n: pd.read_parquet(features / "splits" / f"{n}.parquet") for n in ("train", "valid")}
    x, y = (splits["train"][names].to_numpy("float64"), splits["train"]["__target"].to_numpy())
    classes = schema["classes"]
    model_dir = folder / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    categorical = [i for i, f in enumerate(schema["features"]) if f["kind"] == "categorical"]
    model_file, params = FIT[family](task, x, y, len(classes or ()), config, model_dir, categorical)
    metric, mode = TUNING_METRIC[task]
    info = {
        "family": family, "library_version": "test", "model_file": model_file, "task": task,
        "target": "y", "classes": classes, "features": names, "model_feature_names": names,
        "categorical_features": [names[i] for i in categorical], "config": config, "params": params,
        "rounds": ROUNDS, "tuning_metric": {"name": metric, "mode": mode, "valid": 0.5},
        "rows": {"train": len(y), "valid": len(splits["valid"])},
    }  # fmt: skip
    (model_dir / "model_info.json").write_text(json.dumps(info, indent=2))
    write_tuning(folder, family, metric=metric, mode=mode, curves=family != "linear")


def write_tuning(folder: Path, family: str, *, metric: str, mode: str, curves: bool) -> None:
    """trials.parquet (three trials, with per-round curves when the family has rounds) and
    leaderboard.json, as train writes them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rounds = list(range(1, ROUNDS + 1, 5))
    scores = [0.6, 0.7, 0.65]
    table = pa.table({
        "family": [family] * 3, "trial_id": ["t1", "t2", "t3"], "status": ["ok"] * 3,
        metric: scores, "valid": scores,
        "curve_rounds": [rounds if curves else None] * 3,
        "curve_train": [[0.5 + r / 100 for r in rounds] if curves else None] * 3,
        "curve_valid": [[0.5 + r / 200 for r in rounds] if curves else None] * 3,
    })  # fmt: skip
    ranking = {"mlbatch": json.dumps({"metric": metric, "mode": mode})}
    pq.write_table(table.replace_schema_metadata(ranking), folder / "trials.parquet")
    best = {
        "family": family, "trial_id": "t2", metric: 0.7, "valid": 0.7, "cv": None, "test": 0.68,
        "rounds": ROUNDS, "trials": 3, "completed": 3, "seconds": 0.1,
    }  # fmt: skip
    leaderboard = {"metric": metric, "mode": mode, "selection": "valid", "best": family,
                   "families": [best]}  # fmt: skip
    (folder / "leaderboard.json").write_text(json.dumps(leaderboard))


def _fit_lightgbm(task, x, y, num_classes, config, folder, categorical) -> tuple[str, dict]:
    import lightgbm

    objective = {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}
    params = {"objective": objective[task], "verbosity": -1, "num_threads": 1, **config}
    if task == "multiclass":
        params["num_class"] = num_classes
    booster = lightgbm.train(
        params, lightgbm.Dataset(x, y, categorical_feature=categorical), ROUNDS
    )
    booster.save_model(folder / "model.txt")
    return "model.txt", params


def _fit_xgboost(task, x, y, num_classes, config, folder, categorical) -> tuple[str, dict]:
    import xgboost

    objective = {"binary": "binary:logistic", "multiclass": "multi:softprob",
                 "regression": "reg:squarederror"}  # fmt: skip
    params = {"objective": objective[task], "nthread": 1, **config}
    if task == "multiclass":
        params["num_class"] = num_classes
    names = [f"f{i}" for i in range(x.shape[1])]
    booster = xgboost.train(params, xgboost.DMatrix(x, y, feature_names=names), ROUNDS)
    booster.save_model(folder / "model.json")
    return "model.json", params


def _fit_linear(task, x, y, num_classes, config, folder, categorical) -> tuple[str, dict]:
    """A scikit-learn family: scaling and a linear model in one Pipeline, saved with skops."""
    import skops.io
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    estimator = Ridge() if task == "regression" else LogisticRegression(max_iter=500)
    skops.io.dump(make_pipeline(StandardScaler(), estimator).fit(x, y), folder / "model.skops")
    return "model.skops", {}


FIT = {"lightgbm": _fit_lightgbm, "xgboost": _fit_xgboost, "linear": _fit_linear}
ROUNDS = 40


def model_run(
    root: str, task: str, *, seed: int = 0, rows: int = 500, family: str = "lightgbm",
    config: dict | None = None, name: str = "unit", extra: dict | None = None,
    rename: dict | None = None,
) -> RunLayout:  # fmt: skip
    """A file:// run with features and train committed: ready for evaluate."""
    layout = new_run(root, name=name, extra=extra)
    features = attempt_folder(layout, "features", "1-aaaa")
    write_features(features, task, rows=rows, seed=seed, rename=rename)
    commit_attempt(layout, "features", "1-aaaa")
    config = config or {"learning_rate": 0.2, "max_depth": 3}
    write_train(attempt_folder(layout, "train", "1-bbbb"), features, task, family=family,
                config=config)  # fmt: skip
    commit_attempt(layout, "train", "1-bbbb")
    return layout


def commit_files(layout: RunLayout, stage: str, attempt: str, files: dict[str, bytes]) -> None:
    """Commit a stage whose outputs are these bytes (on any storage)."""
    outputs = {}
    for path, data in files.items():
        storage.write_bytes(storage.join(layout.attempt_uri(stage, attempt), path), data)
        outputs[path] = OutputFile(size=len(data), sha256=_sha256(data))
    commit_outputs(layout, stage, attempt, outputs)


def run_stage_process(stage: str, layout: RunLayout, attempt: str = "1-abcd", env=None):
    """The stage program as the executors run it."""
    return subprocess.run(
        [sys.executable, "-m", f"mlbatch_jobs.{stage}", "--run", layout.uri, "--attempt", attempt],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def evaluate_in_process(layout: RunLayout, *, attempt: str = "1-eval"):
    """evaluate's work function in this process, without the commit: its StageContext."""
    import tempfile

    from mlbatch.runs import read_spec
    from mlbatch.spec import PipelineSpec
    from mlbatch.stage import StageContext
    from mlbatch_jobs.evaluate.stage import run

    out = attempt_folder(layout, "evaluate", attempt)
    out.mkdir(parents=True, exist_ok=True)
    # Scratch lives as long as the work, as in the stage runtime (mlbatch.stage).
    with tempfile.TemporaryDirectory(prefix="evaluate-work-") as work:
        ctx = StageContext(
            layout=layout, stage="evaluate", attempt=attempt,
            spec=PipelineSpec.model_validate(read_spec(layout)), out_dir=out,
            work_dir=Path(work),
        )  # fmt: skip
        run(ctx)
    return ctx
