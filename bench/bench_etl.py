"""ETL throughput: the etl stage on its pandas and Dask engines against a plain pandas
script doing the same joins, in the same run, on the flights demo and on a deterministic
synthetic flights-like table (bench/flights_synthetic.py, written outside the repo).

    python bench/bench_etl.py                       # demo + 10M rows (Parquet and CSV)
    python bench/bench_etl.py --rows 50000000 --no-csv --variants dask   # make bench-large

Each variant runs as its own process; wall time and the peak RSS of its whole process tree
(Dask workers included) are measured from outside. Results: bench/results/etl-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import flights_synthetic  # noqa: E402

from mlbatch import runs, storage  # noqa: E402
from mlbatch.controller.demo import copy_demo_data  # noqa: E402
from mlbatch.spec import load_spec  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
VARIANTS = ("plain", "pandas", "dask")


def plain_pandas(flights: str, raw: str, out: str) -> int:
    """The baseline: what a data scientist writes by hand for the same ETL."""
    import pandas as pd

    table = pd.read_csv(flights) if flights.endswith(".csv") else pd.read_parquet(flights)
    weather = pd.read_csv(f"{raw}/weather.csv")
    planes = pd.read_csv(f"{raw}/planes.csv")
    airlines = pd.read_csv(f"{raw}/airlines.csv")
    for frame in (table, weather):
        frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True)
    table = (
        table.merge(weather, on=["origin", "time_hour"], how="left", suffixes=("", "_weather"))
        .merge(planes, on="tailnum", how="left", suffixes=("", "_planes"))
        .merge(airlines, on="carrier", how="left")
    )
    table = table[table["arr_delay"].notna()].copy()
    table["delayed"] = table["arr_delay"] > 15
    table.to_parquet(out, index=False)
    return len(table)


def measure(command: list[str], env: dict | None = None) -> dict:
    """Wall time, CPU time and peak RSS (sampled every 50 ms) of a command's process tree."""
    started, children = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(
        command, env={**os.environ, **(env or {})}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(process.pid)
        while not done.wait(0.05):
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    log, _ = process.communicate()
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{log[-3000:]}")
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_rss_mib": round(peak / 2**20)}


def run_stage(root: str, etl: dict, engine: str, workers: int | None) -> tuple[dict, dict]:
    """One etl stage process on a fresh run; (measurement, manifest metrics)."""
    spec = load_spec(REPO / "examples" / "flights.yaml").model_dump(mode="json")
    spec["etl"] = {**etl, "engine": engine, "dask": {"workers": workers, "partition_mb": 64}}
    layout = runs.RunLayout(root, runs.new_run_id())
    runs.write_spec(layout, spec)
    command = [sys.executable, "-m", "mlbatch_jobs.etl", "--run", layout.uri, "--attempt", "1-b"]
    result = measure(command, env={"DASK_SCHEDULER_ADDRESS": ""})
    manifest = json.loads(storage.read_bytes(layout.manifest_uri("etl")))
    table = storage.local_path(storage.join(layout.attempt_uri("etl", "1-b"), "table.parquet"))
    parquet = pq.ParquetFile(table)
    first = parquet.read_row_group(0)  # Arrow bytes per row, times the rows
    result["output_rows"] = parquet.metadata.num_rows
    in_memory = first.nbytes / max(first.num_rows, 1) * parquet.metadata.num_rows
    result["output_in_memory_mib"] = round(in_memory / 2**20)
    return result, manifest["metrics"]


def bench_case(name: str, rows: int, flights: str, raw: str, variants: list[str], *,
               repeat: int, workers: int | None) -> dict:  # fmt: skip
    """Every variant on one input, `repeat` times each, interleaved; medians reported."""
    etl = load_spec(REPO / "examples" / "flights.yaml").model_dump(mode="json")["etl"]
    etl["sources"]["flights"]["uri"] = flights
    for source in ("weather", "planes", "airlines"):
        etl["sources"][source]["uri"] = f"{raw}/{source}.csv"
    for rule in etl["validation"]:  # random flight numbers repeat now and then: report them
        if rule["rule"] == "unique":
            rule["severity"] = "warn"
    found: dict[str, list[dict]] = {v: [] for v in variants}
    # A run per variant and repeat, up to GBs each at 10M rows: gone when the case ends.
    with tempfile.TemporaryDirectory(prefix="mlbatch-bench-etl-") as folder:
        root = storage.resolve_uri(folder)
        for _ in range(repeat):
            for variant in variants:
                if variant == "plain":
                    out = storage.local_path(root) / "plain.parquet"
                    result = measure([sys.executable, __file__, "plain", flights, raw, str(out)])
                    result["output_rows"] = pq.read_metadata(out).num_rows
                else:
                    result, _ = run_stage(root, etl, variant, workers)
                result["rows_per_s"] = round(rows / result["wall_s"])
                found[variant].append(result)
                print(f"{name} {variant}: {result}", flush=True)
    report = {"case": name, "rows": rows, "flights": flights,
              "variants": {v: _median(r) for v, r in found.items()}}  # fmt: skip
    report["ratios"] = _ratios(report["variants"])
    return report


def _median(results: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def _ratios(variants: dict) -> dict:
    ratios = {}
    if "plain" in variants:
        plain = variants["plain"]
        for engine in ("pandas", "dask"):
            if engine in variants:
                ratios[f"{engine}_throughput_vs_plain"] = round(
                    variants[engine]["rows_per_s"] / plain["rows_per_s"], 2
                )
                ratios[f"{engine}_peak_rss_vs_plain"] = round(
                    variants[engine]["peak_rss_mib"] / plain["peak_rss_mib"], 2
                )
    if "dask" in variants:
        ratios["dask_peak_rss_vs_output_in_memory"] = round(
            variants["dask"]["peak_rss_mib"] / variants["dask"]["output_in_memory_mib"], 2
        )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--no-csv", action="store_true", help="skip the synthetic CSV case")
    parser.add_argument("--no-demo", action="store_true", help="skip the flights demo case")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--demo-repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="Dask workers (default: CPUs)")
    args = parser.parse_args()
    variants = args.variants.split(",")
    cases = []
    if not args.no_demo:
        demo_root = storage.resolve_uri(str(flights_synthetic.default_root() / "demo"))
        copy_demo_data(demo_root)
        raw = f"{demo_root}/raw/flights"
        cases.append(bench_case("flights demo", 336_776, f"{raw}/flights.csv", raw, variants,
                                repeat=args.demo_repeat, workers=args.workers))  # fmt: skip
    folder = flights_synthetic.generate(args.rows, csv=not args.no_csv)
    raw = storage.resolve_uri(str(folder))
    cases.append(bench_case(f"synthetic {args.rows:,} Parquet", args.rows,
                            f"{raw}/flights/*.parquet", raw, variants, repeat=1,
                            workers=args.workers))  # fmt: skip
    if not args.no_csv:
        cases.append(bench_case(f"synthetic {args.rows:,} CSV", args.rows, f"{raw}/flights.csv",
                                raw, variants, repeat=1, workers=args.workers))  # fmt: skip
    memory = round(psutil.virtual_memory().total / 2**30, 1)
    report = {"bench": "etl", "cpus": len(os.sched_getaffinity(0)), "memory_gib": memory,
              "cases": cases}  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"etl-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "plain":
        flights_uri, raw_uri, out_path = sys.argv[2:5]
        paths = [storage.local_path(u) or u for u in (flights_uri, raw_uri)]
        plain_pandas(str(paths[0]).replace("*.parquet", ""), str(paths[1]), out_path)
    else:
        main()
