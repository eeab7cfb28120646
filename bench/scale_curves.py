"""Cost curves: every stage of the pipeline, local executor, on a deterministic synthetic
flights-like table (bench/flights_synthetic.py) at growing sizes, with anchors measured in
the same run: the plain pandas ETL script of bench_etl.py and plain XGBoost `hist` on the
features stage's own splits.

    python bench/scale_curves.py                                  # 100k, 1M and 10M rows
    python bench/scale_curves.py --sizes 100000,1000000 --docs    # + docs/scale.md and its plot
    python bench/scale_curves.py --etl-sizes 50000000             # + ETL alone at 50M (long)
    python bench/scale_curves.py --dask-cluster                   # + ETL on a Dask cluster
    python bench/scale_curves.py --sizes "" --etl-sizes 10000000 --dask-cluster-only \
        --dask-worker-memory 300MB                                # that ETL alone
    python bench/scale_curves.py --data-parallel                  # + train.data_parallel: always

Per stage: wall time, CPU-seconds and peak RSS from its manifest's profile, and the
log-log slope between consecutive sizes. Train does a fixed amount of work (one XGBoost
trial of fixed hyperparameters and rounds, no early stopping, no refit), so its cost is
comparable across sizes and with the plain XGBoost anchor. Targets (printed pass/fail):
every stage's slope <= 1.1; explore and evaluate flat beyond their sample sizes; train's
per-round cost within 1.2x plain XGBoost at the largest size; ETL on the Dask cluster
finishing a table 10x larger than one worker's memory limit. Results go to
bench/results/scale-*.json (not committed); `--docs` rewrites docs/scale.md's results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import flights_synthetic  # noqa: E402
import scale_report  # noqa: E402
from bench_etl import measure  # noqa: E402
from scale_dask import DaskCluster  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from ray_cluster import RayCluster  # noqa: E402

from mlbatch import storage  # noqa: E402
from mlbatch.errors import BadInput  # noqa: E402
from mlbatch.manifest import load_manifest, output_uri  # noqa: E402
from mlbatch.runs import RunLayout  # noqa: E402
from mlbatch.spec import STAGES, load_spec  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
BENCH_ETL = Path(__file__).resolve().parent / "bench_etl.py"
# One XGBoost trial of fixed work: the same hyperparameters every size, on one thread.
XGBOOST_CONFIG = {"learning_rate": 0.1, "max_depth": 6, "min_child_weight": 1.0,
                  "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0,
                  "reg_alpha": 0.0}  # fmt: skip


def pipeline_spec(raw: str, *, rounds: int, data_parallel: bool = False) -> dict:
    """The flights demo's spec on the synthetic table, train and evaluate at fixed work."""
    spec = load_spec(REPO / "examples" / "flights.yaml").model_dump(mode="json", exclude_unset=True)
    etl = spec["etl"]
    etl["sources"]["flights"]["uri"] = f"{raw}/flights/*.parquet"
    for source in ("weather", "planes", "airlines"):
        etl["sources"][source]["uri"] = f"{raw}/{source}.csv"
    for rule in etl["validation"]:
        if rule["rule"] == "unique":  # random flight numbers repeat now and then: report them
            rule["severity"] = "warn"
        if rule["rule"] == "row_count":
            rule["min"] = 1000  # the 100k case keeps ~97k rows
    spec["train"] = {
        "models": ["xgboost"], "num_samples": 1, "time_budget_s": 36_000, "search": "random",
        "scheduler": "fifo", "max_rounds": rounds, "early_stopping_rounds": rounds + 1,
        "search_spaces": {"xgboost": dict(XGBOOST_CONFIG)}, "cv": False,
        "refit_on_train_valid": False, "ensemble": False, "target_transform": "none",
        "resources": {"gpu": "never", "cpus_per_trial": 1},
    }  # fmt: skip
    if data_parallel:
        spec["train"]["data_parallel"] = "always"
    spec["evaluate"]["gates"] = []  # random synthetic rows: no gate to pass
    return spec


def write_spec(spec: dict, folder: Path) -> Path:
    """The spec as a file, validated by the same loader the CLI uses (BadInput if not)."""
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    load_spec(path)
    return path


def run_pipeline(spec_path: Path, root: str, env: dict | None = None) -> tuple[dict, RunLayout]:
    """`mlbatch run` on the local executor, measured from outside; (summary, layout).
    env: variables added to the controller's (and so the stages') environment."""
    command = [sys.executable, "-m", "mlbatch.controller.cli", "run", str(spec_path),
               "--storage", root, "-o", "json"]  # fmt: skip
    started = time.perf_counter()
    environment = {**os.environ, **(env or {})}
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    wall = time.perf_counter() - started
    try:
        summary = json.loads(done.stdout)
    except json.JSONDecodeError:
        message = f"mlbatch run failed ({done.returncode}):\n{done.stderr[-3000:]}"
        raise RuntimeError(message) from None
    if done.returncode != 0:  # the stages that committed are still measured
        summary["failed"] = f"mlbatch run exited {done.returncode}: {summary.get('message')}"
        print(f"FAILED: {summary['failed']}\n{done.stderr[-3000:]}", file=sys.stderr, flush=True)
    summary["controller_wall_s"] = round(wall, 2)
    return summary, RunLayout(root, summary["run_id"])


def stage_costs(layout: RunLayout, stages=STAGES) -> dict:
    costs = {}
    for stage in stages:
        found = load_manifest(layout, stage)
        if found is None:
            continue  # not committed: the run failed before it
        manifest, _ = found
        profile = manifest.profile
        costs[stage] = {"wall_s": round(profile.wall_s, 2), "cpu_s": round(profile.cpu_s, 2),
                        "peak_rss_mib": round(profile.peak_rss_mb),
                        "cached": manifest.cached_from is not None}  # fmt: skip
    return costs


def train_trials(layout: RunLayout) -> list[dict]:
    """Rounds, fit seconds and threads of each train trial (trials.parquet)."""
    manifest, _ = load_manifest(layout, "train")
    path = storage.local_path(output_uri(layout, manifest, "trials.parquet"))
    trials = pd.read_parquet(path)
    keep = ["family", "status", "rounds", "fit_s", "rounds_per_s", "cpus", "device", "config"]
    rows = trials[[c for c in keep if c in trials.columns]].to_dict("records")
    for row in rows:
        if isinstance(row.get("config"), str):
            row["config"] = json.loads(row["config"])
        if row.get("rounds") and row.get("fit_s"):
            row["s_per_round"] = row["fit_s"] / row["rounds"]
    return rows


def split_paths(layout: RunLayout) -> tuple[str, str]:
    manifest, _ = load_manifest(layout, "features")
    train, valid = (storage.local_path(output_uri(layout, manifest, f"splits/{n}.parquet"))
                    for n in ("train", "valid"))  # fmt: skip
    return str(train), str(valid)


def plain_xgboost(train_path: str, valid_path: str, rounds: int, threads: int,
                  device: str = "cpu") -> dict:  # fmt: skip
    """The anchor: what a data scientist writes with XGBoost on the same rows, fit timed
    as the train stage times a trial's (matrices built, then boosted)."""
    import xgboost as xgb

    train, valid = pd.read_parquet(train_path), pd.read_parquet(valid_path)
    features = [c for c in train.columns if not c.startswith("__")]
    started, cpu_started = time.perf_counter(), time.process_time()
    dtrain = xgb.DMatrix(train[features], train["__target"], nthread=threads)
    dvalid = xgb.DMatrix(valid[features], valid["__target"], nthread=threads)
    params = {"objective": "binary:logistic", "eval_metric": "logloss", "tree_method": "hist",
              "nthread": threads, "device": device, **XGBOOST_CONFIG}  # fmt: skip
    booster = xgb.train(params, dtrain, num_boost_round=rounds, evals=[(dvalid, "valid")],
                        verbose_eval=False)  # fmt: skip
    fit_s, fit_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    return {"rows": len(train), "features": len(features), "rounds": booster.num_boosted_rounds(),
            "fit_s": round(fit_s, 3), "fit_cpu_s": round(fit_cpu_s, 3),
            "s_per_round": fit_s / rounds}  # fmt: skip


def measure_plain_xgboost(layout: RunLayout, rounds: int, threads: int) -> dict:
    train, valid = split_paths(layout)
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        command = [sys.executable, __file__, "plain-xgboost", train, valid, str(rounds),
                   str(threads), out.name]  # fmt: skip
        result = measure(command)
        result.update(json.loads(Path(out.name).read_text()))
    return result


def measure_plain_etl(raw: str, scratch: Path) -> dict:
    out = scratch / "plain.parquet"
    result = measure([sys.executable, str(BENCH_ETL), "plain", f"{raw}/flights/*.parquet", raw,
                      str(out)])  # fmt: skip
    result["output_rows"] = pq.read_metadata(out).num_rows
    out.unlink()
    return result


def run_etl_stage(spec: dict, root: str, *, engine: str, env: dict, partition_mb: int = 64
                  ) -> dict:  # fmt: skip
    """The etl stage program alone on a fresh run (as the local executor launches it)."""
    from mlbatch import runs

    spec = json.loads(json.dumps(spec))
    spec["etl"]["engine"] = engine
    spec["etl"]["dask"] = {"partition_mb": partition_mb}
    layout = runs.RunLayout(root, runs.new_run_id())
    runs.write_spec(layout, load_spec_dict(spec))
    command = [sys.executable, "-m", "mlbatch_jobs.etl", "--run", layout.uri, "--attempt", "1-a"]
    result = measure(command, env=env)
    manifest, _ = load_manifest(layout, "etl")
    result["stage_profile"] = stage_costs(layout, ["etl"])["etl"]
    result["engine_used"] = manifest.metrics.get("engine")
    table = storage.local_path(storage.join(layout.attempt_uri("etl", "1-a"), "table.parquet"))
    result["output_rows"], result["output_in_memory_mib"] = in_memory_size(Path(table))
    shutil.rmtree(storage.local_path(layout.uri), ignore_errors=True)
    return result


def in_memory_size(table: Path) -> tuple[int, int]:
    """(rows, MiB as Arrow in memory) of a Parquet file or folder: bytes per row of the
    first row group, times the rows."""
    files = sorted(table.rglob("*.parquet")) if table.is_dir() else [table]
    rows = sum(pq.read_metadata(f).num_rows for f in files)
    first = next(pq.ParquetFile(f) for f in files if pq.read_metadata(f).num_rows)
    group = first.read_row_group(0)
    return rows, round(group.nbytes / max(group.num_rows, 1) * rows / 2**20)


def load_spec_dict(spec: dict) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        return load_spec(write_spec(spec, Path(folder))).model_dump(mode="json")


def bench_size(rows: int, args, *, full: bool) -> dict:
    """One size: the pipeline (full) or the ETL alone, with its anchors and options."""
    folder = flights_synthetic.generate(rows)
    raw = storage.resolve_uri(str(folder))
    case: dict = {"rows": rows, "load_average_before": os.getloadavg()}
    scratch = Path(tempfile.mkdtemp(prefix=f"scale-{rows}-", dir=flights_synthetic.default_root()))
    root = storage.resolve_uri(str(scratch / "store"))
    try:
        spec = pipeline_spec(raw, rounds=args.rounds)
        if not args.dask_cluster_only:
            case["plain_pandas_etl"] = _attempt(lambda: measure_plain_etl(raw, scratch))
        if args.dask_cluster_only:
            pass  # the Dask-cluster ETL alone, below (joins other reports with --merge)
        elif full:
            summary, layout = run_pipeline(write_spec(spec, scratch), root)
            case["run_id"] = summary["run_id"]
            case["controller_wall_s"] = summary["controller_wall_s"]
            case["stages"] = stage_costs(layout)
            if "failed" in summary:
                case["note"] = f"{summary['failed']} (the stages before it are measured)"
            else:
                case["train_trials"] = train_trials(layout)
                case["plain_xgboost"] = _attempt(
                    lambda: measure_plain_xgboost(layout, args.rounds, threads=1)
                )
            if args.data_parallel and "failed" not in summary:
                case["data_parallel"] = _attempt(
                    lambda: data_parallel_train(raw, root, scratch, args)
                )
                rates = [t["s_per_round"] for t in case.get("train_trials") or []
                         if t.get("s_per_round")]  # fmt: skip
                if rates:  # the one-worker trial of this run, beside the parallel one
                    case["data_parallel"]["one_worker_s_per_round"] = rates[0]
        else:
            case["etl_only"] = _attempt(
                lambda: run_etl_stage(spec, root, engine="auto", env={"DASK_SCHEDULER_ADDRESS": ""})
            )
        if args.dask_cluster:
            case["dask_cluster_etl"] = _attempt(lambda: dask_cluster_etl(spec, root, scratch, args))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if rows >= args.delete_data_above:
            shutil.rmtree(folder, ignore_errors=True)
    case["load_average_after"] = os.getloadavg()
    print(json.dumps({k: v for k, v in case.items() if k != "train_trials"}), flush=True)
    return case


def data_parallel_train(raw: str, root: str, scratch: Path, args) -> dict:
    """train with train.data_parallel: always, in a run of its own on the same storage
    (etl, explore and features are adopted from the run before when the controller's
    cache finds them)."""
    spec = pipeline_spec(raw, rounds=args.rounds, data_parallel=True)
    folder = scratch / "data-parallel"
    folder.mkdir()
    try:
        path = write_spec(spec, folder)
    except BadInput as error:
        return {"skipped": f"the spec rejects train.data_parallel: {error}"}
    # Two workers and Ray Data's reads need 3 CPUs, more than a local Ray of this machine's
    # may have: a two-node Ray cluster on loopback, 2 CPUs a node (tests/integration's).
    with RayCluster.start(nodes=2, cpus_per_node=2) as cluster:
        summary, layout = run_pipeline(path, root, env={"RAY_ADDRESS": cluster.client_address})
    if "failed" in summary:
        return {"run_id": summary["run_id"], "failed": summary["failed"]}
    # The trials run in the cluster's processes: train's own CPU-seconds leave them out.
    return {"run_id": summary["run_id"], "ray_nodes": 2, "ray_cpus_per_node": 2,
            "train": stage_costs(layout, ["train"])["train"],
            "train_trials": train_trials(layout)}  # fmt: skip


def dask_cluster_etl(spec: dict, root: str, scratch: Path, args) -> dict:
    """The etl stage joining a Dask cluster of separate processes (DASK_SCHEDULER_ADDRESS)."""
    with DaskCluster(scratch / "dask", workers=args.dask_workers,
                     memory_limit=args.dask_worker_memory) as cluster:  # fmt: skip
        result = run_etl_stage(spec, root, engine="dask", partition_mb=args.dask_partition_mb,
                               env={"DASK_SCHEDULER_ADDRESS": cluster.address})  # fmt: skip
        result.update(cluster.report())
    return result


def _attempt(step) -> dict:
    """A step's result, or its failure as data: one failed anchor must not lose the rest."""
    try:
        return step()
    except Exception as error:  # noqa: BLE001 - recorded in the report, then printed
        message = f"{type(error).__name__}: {str(error)[-1500:]}"
        print(f"FAILED: {message}", file=sys.stderr, flush=True)
        return {"failed": message}


def sizes(text: str) -> list[int]:
    try:
        values = sorted({int(float(v)) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of row counts: {text!r}") from None
    if values and values[0] < 10_000:
        raise argparse.ArgumentTypeError("sizes must be row counts of at least 10000")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        type=sizes,
        default=sizes("100000,1000000,10000000"),
        help="rows of the full-pipeline cases",
    )
    parser.add_argument(
        "--etl-sizes", type=sizes, default=[], help="rows of ETL-only cases (e.g. 50000000: long)"
    )
    parser.add_argument("--rounds", type=int, default=50, help="boosting rounds of the trial")
    parser.add_argument(
        "--dask-cluster",
        action="store_true",
        help="also the ETL on a `dask scheduler` + `dask worker` cluster",
    )
    parser.add_argument(
        "--dask-cluster-only",
        action="store_true",
        help="only the ETL on the Dask cluster, at --etl-sizes (no pipeline, no anchors)",
    )
    parser.add_argument("--dask-workers", type=int, default=2)
    parser.add_argument(
        "--dask-worker-memory", default="512MB", help="each Dask worker's memory limit"
    )
    parser.add_argument("--dask-partition-mb", type=int, default=16)
    parser.add_argument(
        "--data-parallel", action="store_true", help="also train with train.data_parallel: always"
    )
    parser.add_argument(
        "--delete-data-above",
        type=int,
        default=50_000_000,
        help="delete generated tables of at least this many rows after use",
    )
    parser.add_argument(
        "--docs",
        action="store_true",
        help="rewrite docs/scale.md's results section and docs/scale.png",
    )
    parser.add_argument(
        "--slope-on",
        choices=["cpu_s", "wall_s"],
        default="cpu_s",
        help="the cost the slope targets judge (default: CPU-seconds)",
    )
    parser.add_argument(
        "--render",
        type=Path,
        help="measure nothing: the targets, table and (--docs) plot of a report",
    )
    parser.add_argument(
        "--merge",
        type=Path,
        action="append",
        default=[],
        help="an earlier report whose cases of other sizes join this one's",
    )
    args = parser.parse_args()
    if args.render:
        merged = RESULTS / f"scale-merged-{time.strftime('%Y%m%d-%H%M%S')}.json"
        finish(
            json.loads(args.render.read_text()), args, path=merged if args.merge else args.render
        )
        return
    if not args.sizes and not args.etl_sizes:
        parser.error("nothing to measure: --sizes and --etl-sizes are both empty")
    args.dask_cluster = args.dask_cluster or args.dask_cluster_only
    if args.rounds < 1 or args.dask_workers < 1:
        parser.error("--rounds and --dask-workers must be positive")

    report = {"bench": "scale", "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "cpus": len(os.sched_getaffinity(0)), "uptime": _uptime(),
              "rounds": args.rounds, "cases": []}  # fmt: skip
    for rows in sorted({*args.sizes, *args.etl_sizes}):
        report["cases"].append(bench_size(rows, args, full=rows in args.sizes))
    report["uptime_after"] = _uptime()
    report["dask_worker_memory"] = args.dask_worker_memory
    RESULTS.mkdir(parents=True, exist_ok=True)
    finish(report, args, path=RESULTS / f"scale-{time.strftime('%Y%m%d-%H%M%S')}.json")


def merge(report: dict, earlier: dict) -> None:
    """An earlier report's cases join this one's; at a size both measured, the earlier
    case adds only what this one lacks (e.g. a Dask-cluster ETL measured apart)."""
    by_rows = {c["rows"]: c for c in report["cases"]}
    for case in earlier["cases"]:
        if case["rows"] in by_rows:
            mine = by_rows[case["rows"]]
            for key, value in case.items():
                mine.setdefault(key, value)
        else:
            report["cases"].append(case)
    report["cases"].sort(key=lambda c: c["rows"])
    report.setdefault("merged", []).append(
        {k: earlier[k] for k in ("command", "started", "uptime", "uptime_after")}
    )


def finish(report: dict, args, *, path: Path) -> None:
    """Slopes and targets into the report, the report to path, the table printed, docs."""
    for earlier in args.merge:
        merge(report, json.loads(earlier.read_text()))
    report["slopes"] = scale_report.slopes(report["cases"])
    report["targets"] = scale_report.targets(report, args.slope_on)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(scale_report.markdown(report))
    print(f"report: {path}")
    if args.docs:
        scale_report.write_docs(report, REPO / "docs" / "scale.md", REPO / "docs" / "scale.png")


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "plain-xgboost":
        train_path, valid_path, rounds, threads, out_path = sys.argv[2:7]
        result = plain_xgboost(train_path, valid_path, int(rounds), int(threads))
        Path(out_path).write_text(json.dumps(result))
    else:
        main()
