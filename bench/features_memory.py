"""The features stage alone, measured, and its outputs compared between two versions of the
code, on the synthetic flights-like table (bench/flights_synthetic.py) after the etl and
explore stages of scale_curves.py's spec.

    python bench/features_memory.py prepare 1000000            # etl + explore; prints the run
    python bench/features_memory.py features <run> [--code <folder with lib/ and jobs/>]
    python bench/features_memory.py compare <attempt folder> <attempt folder>

`features` runs the stage program in a new attempt of the prepared run (wall, CPU-seconds,
peak RSS of its process tree) and moves its manifest aside, so that the next attempt (the
other version of the code) commits too. `--code` runs another checkout's stage, e.g. a
`git archive` of the commit to compare against. `compare` checks every output file of two
attempts: Parquet by Arrow `equals` (schema, metadata and values), JSON by value, the
transformer's skops file by its content (skops_content), the rest (report.html) by bytes;
it exits 1 on any difference. Run both attempts with the same PYTHONHASHSEED: the order of
some of the stage's lists follows set iteration.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import flights_synthetic  # noqa: E402
from bench_etl import measure  # noqa: E402
from scale_curves import in_memory_size, load_spec_dict, pipeline_spec  # noqa: E402

from mlbatch import runs, storage  # noqa: E402
from mlbatch.logs import LOG_DIR  # noqa: E402
from mlbatch.manifest import load_manifest  # noqa: E402


def prepare(rows: int, root: Path) -> str:
    """A fresh run on `root` with etl and explore committed; its URI."""
    raw = storage.resolve_uri(str(flights_synthetic.generate(rows)))
    layout = runs.RunLayout(storage.resolve_uri(str(root)), runs.new_run_id())
    runs.write_spec(layout, load_spec_dict(pipeline_spec(raw, rounds=1)))
    for stage in ("etl", "explore"):
        command = [sys.executable, "-m", f"mlbatch_jobs.{stage}", "--run", layout.uri,
                   "--attempt", "1-a"]  # fmt: skip
        print(stage, json.dumps(measure(command, env={"DASK_SCHEDULER_ADDRESS": ""})), flush=True)
    table = storage.local_path(storage.join(layout.attempt_uri("etl", "1-a"), "table.parquet"))
    rows_out, mib = in_memory_size(Path(table))
    print(json.dumps({"run": layout.uri, "etl_rows": rows_out, "etl_in_memory_mib": mib}))
    return layout.uri


def features(run: str, code: Path | None) -> dict:
    """One features attempt on a prepared run, measured; its manifest is then set aside."""
    layout = runs.RunLayout.from_run_uri(storage.resolve_uri(run))
    attempt = runs.new_attempt_id(len(_attempts(layout)) + 1)
    env = {"DASK_SCHEDULER_ADDRESS": ""}
    with tempfile.TemporaryDirectory() as shim:
        if code is not None:  # that checkout's lib and jobs first on the path
            os.symlink(code.resolve() / "jobs", Path(shim) / "mlbatch_jobs")
            env["PYTHONPATH"] = f"{code.resolve() / 'lib'}{os.pathsep}{shim}"
        command = [sys.executable, "-m", "mlbatch_jobs.features", "--run", layout.uri,
                   "--attempt", attempt]  # fmt: skip
        result = measure(command, env=env)
    manifest, _ = load_manifest(layout, "features")
    folder = storage.local_path(layout.attempt_uri("features", attempt))
    result.update(attempt=attempt, folder=str(folder), stage_profile=manifest.profile.model_dump(),
                  code=str(code or "this checkout"))  # fmt: skip
    manifest_path = Path(storage.local_path(layout.manifest_uri("features")))
    manifest_path.rename(manifest_path.with_name(f"_manifest.{attempt}.json"))
    return result


def compare(first: Path, second: Path) -> list[str]:
    """Every difference between two attempts' outputs, one line each (empty: identical)."""
    found = {p.relative_to(first).as_posix() for p in _files(first)}
    other = {p.relative_to(second).as_posix() for p in _files(second)}
    differences = [f"only in {first}: {p}" for p in sorted(found - other)]
    differences += [f"only in {second}: {p}" for p in sorted(other - found)]
    for path in sorted(found & other):
        a, b = first / path, second / path
        if path.endswith(".parquet"):
            same = pq.read_table(a).equals(pq.read_table(b), check_metadata=True)
        elif path.endswith(".json"):
            same = json.loads(a.read_text()) == json.loads(b.read_text())
        elif path.endswith(".skops"):
            same = skops_content(a) == skops_content(b)
        else:
            same = a.read_bytes() == b.read_bytes()
        print(f"{'same' if same else 'DIFFERENT'}  {path}")
        if not same:
            differences.append(f"differs: {path}")
    return differences


def skops_content(path: Path):
    """A skops file's schema with what differs between two dumps of equal objects taken
    out: each object's `__id__` (its address in the process that dumped it) renumbered in
    order of first appearance, which keeps the file's sharing of objects; each array
    file's name (an address too) replaced by the sha256 of its bytes."""
    with zipfile.ZipFile(path) as archive:
        schema = json.loads(archive.read("schema.json"))
        arrays = {n: hashlib.sha256(archive.read(n)).hexdigest() for n in archive.namelist()
                  if n != "schema.json"}  # fmt: skip
    ids: dict[int, int] = {}

    def canonical(node):
        if isinstance(node, list):
            return [canonical(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: canonical(v) for k, v in node.items()}
        if "__id__" in out:
            out["__id__"] = ids.setdefault(out["__id__"], len(ids))
        if isinstance(out.get("file"), str) and out["file"] in arrays:
            out["file"] = arrays[out["file"]]
        return out

    return canonical(schema)


def _files(folder: Path) -> list[Path]:
    """Output files, without the attempt's logs (they name its own id and times)."""
    return [p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).parts[0]
            != LOG_DIR]  # fmt: skip


def _attempts(layout: runs.RunLayout) -> list[str]:
    folder = Path(storage.local_path(storage.join(layout.uri, "features", "attempts")))
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("prepare", help="a run with etl and explore committed")
    made.add_argument("rows", type=int)
    made.add_argument("--root", type=Path, default=flights_synthetic.default_root() / "features")
    measured = commands.add_parser("features", help="one measured features attempt")
    measured.add_argument("run", help="the run URI `prepare` printed")
    measured.add_argument("--code", type=Path, help="a checkout whose lib/ and jobs/ to run")
    compared = commands.add_parser("compare", help="two features attempts' outputs")
    compared.add_argument("first", type=Path)
    compared.add_argument("second", type=Path)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.rows, args.root)
    elif args.command == "features":
        print(json.dumps(features(args.run, args.code)))
    else:
        differences = compare(args.first, args.second)
        print("\n".join(differences) or "identical")
        sys.exit(1 if differences else 0)


if __name__ == "__main__":
    main()
