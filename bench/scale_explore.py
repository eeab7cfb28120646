"""The explore stage alone at growing sizes, for one or more code trees side by side.

    python bench/scale_explore.py --sizes 100000,1000000,3000000 \
        --code new=$PWD --code old=/tmp/explore-old

Per size: the synthetic flights-like table (bench/flights_synthetic.py) through the etl
stage once, then the explore stage program on that run once per code tree (PYTHONPATH
`<tree>/lib:<tree>/.pyshim`, where `.pyshim/mlbatch_jobs` links `<tree>/jobs`), its
manifest removed in between. Measured from outside (bench_etl.measure: wall, CPU-seconds
of the process tree, peak RSS summed over it) and from the manifest's profile; the
log-log slopes between sizes per tree; whether each tree's advice (drop, flag) agrees
with the first tree's. The spec is scale_curves.pipeline_spec's, explore at its defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import flights_synthetic  # noqa: E402
from bench_etl import measure  # noqa: E402
from scale_curves import RESULTS, load_spec_dict, pipeline_spec, sizes, stage_costs  # noqa: E402

from mlbatch import runs, storage  # noqa: E402
from mlbatch.manifest import load_manifest, output_uri  # noqa: E402


def explore_once(layout: runs.RunLayout, tree: Path, attempt: str) -> dict:
    env = {"PYTHONPATH": f"{tree / 'lib'}:{tree / '.pyshim'}", "DASK_SCHEDULER_ADDRESS": ""}
    command = [sys.executable, "-m", "mlbatch_jobs.explore", "--run", layout.uri,
               "--attempt", attempt]  # fmt: skip
    result = measure(command, env=env)
    result["profile"] = stage_costs(layout, ["explore"])["explore"]
    manifest, _ = load_manifest(layout, "explore")
    advice = json.loads(storage.read_bytes(output_uri(layout, manifest, "advice.json")))
    summary = json.loads(storage.read_bytes(output_uri(layout, manifest, "summary.json")))
    result["advice"] = {"drop": advice["drop"], "flag": advice["flag"]}
    result["estimated"] = sorted(summary.get("estimated") or {})
    result["outputs"] = {"summary.json": summary, "advice.json": advice}  # to compare trees
    storage.local_path(layout.manifest_uri("explore")).unlink()  # the next tree runs afresh
    return result


def bench_size(rows: int, trees: dict[str, Path], scratch: Path) -> dict:
    folder = flights_synthetic.generate(rows)
    spec = pipeline_spec(storage.resolve_uri(str(folder)), rounds=1)
    root = storage.resolve_uri(str(scratch / f"store-{rows}"))
    layout = runs.RunLayout(root, runs.new_run_id())
    runs.write_spec(layout, load_spec_dict(spec))
    etl = measure([sys.executable, "-m", "mlbatch_jobs.etl", "--run", layout.uri,
                   "--attempt", "1-a"], env={"DASK_SCHEDULER_ADDRESS": ""})  # fmt: skip
    manifest, _ = load_manifest(layout, "etl")
    case = {"rows": rows, "etl_rows": manifest.metrics.get("rows"), "etl": etl, "explore": {}}
    for index, (name, tree) in enumerate(trees.items()):
        case["explore"][name] = explore_once(layout, tree, f"1-{index + 2}")
        shown = {k: v for k, v in case["explore"][name].items() if k != "outputs"}
        print(json.dumps({"rows": rows, "tree": name, **shown}), flush=True)
    shutil.rmtree(storage.local_path(layout.uri), ignore_errors=True)
    return case


def slopes(cases: list[dict], tree: str) -> list[dict]:
    found = []
    for small, large in zip(cases, cases[1:], strict=False):
        a, b = small["explore"][tree], large["explore"][tree]
        ratio = math.log(large["rows"] / small["rows"])
        found.append({
            "from": small["rows"], "to": large["rows"],
            **{key: round(math.log(b[key] / a[key]) / ratio, 2)
               for key in ("wall_s", "cpu_s", "peak_rss_mib")},
        })  # fmt: skip
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=sizes, default=sizes("100000,1000000,3000000"))
    parser.add_argument("--code", action="append", required=True,
                        help="name=path of a code tree (lib/, jobs/, .pyshim/)")  # fmt: skip
    args = parser.parse_args()
    trees = {}
    for item in args.code:
        name, _, path = item.partition("=")
        if not path or not (Path(path) / ".pyshim" / "mlbatch_jobs").exists():
            parser.error(f"--code {item!r}: give name=path, path/.pyshim/mlbatch_jobs must exist")
        trees[name] = Path(path).resolve()
    scratch = Path(tempfile.mkdtemp(prefix="scale-explore-", dir=flights_synthetic.default_root()))
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    report = {"bench": "scale-explore", "started": started, "cases": [],
              "trees": {k: str(v) for k, v in trees.items()}}  # fmt: skip
    try:
        for rows in args.sizes:
            report["cases"].append(bench_size(rows, trees, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report["slopes"] = {name: slopes(report["cases"], name) for name in trees}
    first = next(iter(trees))
    report["same_advice_as_" + first] = {
        name: [c["rows"] for c in report["cases"]
               if c["explore"][name]["advice"] != c["explore"][first]["advice"]] or "all sizes"
        for name in trees
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"scale-explore-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(
        "| rows | code | wall s | CPU s | peak RSS MiB (tree) | profile CPU s | profile RSS MiB |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    for case in report["cases"]:
        for name, got in case["explore"].items():
            profile = got["profile"]
            print(
                f"| {case['rows']:,} | {name} | {got['wall_s']} | {got['cpu_s']} | "
                f"{got['peak_rss_mib']:,} | {profile['cpu_s']} | {profile['peak_rss_mib']:,} |"
            )
    print(json.dumps({"slopes": report["slopes"],
                      "same_advice": report["same_advice_as_" + first]}, indent=1))  # fmt: skip
    print(f"report: {path}")


if __name__ == "__main__":
    main()
