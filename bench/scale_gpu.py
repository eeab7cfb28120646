"""The GPU check's measurement (bench/gpu_check.sh runs it): the pipeline up to train with
`train.resources.gpu: required` on synthetic flights at each size, then raw XGBoost
(`device="cuda"`, `tree_method="hist"`) on the features stage's own splits, same card, same
hyperparameters and rounds, same threads; the ratio of seconds per round (fit time over
rounds, matrices built included on both sides). `--cpu` runs it all on CPUs (a dry run
of everything but the GPU, on tiny data). Writes gpu-check.json to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import flights_synthetic  # noqa: E402
import scale_curves  # noqa: E402

from mlbatch import storage  # noqa: E402


def gpu_spec(raw: str, *, rounds: int, device: str) -> dict:
    """scale_curves's fixed-work spec, its trial on the GPU (or on CPUs in a dry run)."""
    spec = scale_curves.pipeline_spec(raw, rounds=rounds)
    spec["train"]["resources"] = {"gpu": "never" if device == "cpu" else "required"}
    spec["evaluate"].update(bootstrap=0, permutation_repeats=0)  # device time is short
    return spec


def check_size(rows: int, *, rounds: int, device: str, repeat: int) -> dict:
    folder = flights_synthetic.generate(rows)
    raw = storage.resolve_uri(str(folder))
    scratch = Path(tempfile.mkdtemp(prefix=f"gpu-{rows}-", dir=flights_synthetic.default_root()))
    try:
        spec_path = scale_curves.write_spec(gpu_spec(raw, rounds=rounds, device=device), scratch)
        summary, layout = scale_curves.run_pipeline(spec_path, storage.resolve_uri(str(scratch)))
        (trial,) = scale_curves.train_trials(layout)[:1]
        train, valid = scale_curves.split_paths(layout)
        threads = int(trial.get("cpus") or os.cpu_count())
        # Raw XGBoost, best of `repeat` (the first CUDA fit also pays the context's start).
        raw_fits = [scale_curves.plain_xgboost(train, valid, rounds, threads, device=device)
                    for _ in range(repeat)]  # fmt: skip
        best = min(raw_fits, key=lambda r: r["s_per_round"])
        case = {"rows": rows, "run_id": summary["run_id"], "trial": trial,
                "stages": scale_curves.stage_costs(layout), "raw_xgboost": raw_fits,
                "ratio_per_round": round(trial["s_per_round"] / best["s_per_round"], 3),
                "ratio_fit_s": round(trial["fit_s"] / best["fit_s"], 3)}  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"GPU-CHECK {rows:,} rows on {device}: train stage {trial['fit_s']:.2f} s for "
        f"{int(trial['rounds'])} rounds (device {trial.get('device')}), raw XGBoost "
        f"{best['fit_s']:.2f} s: per-round ratio {case['ratio_per_round']}",
        flush=True,
    )
    return case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=scale_curves.sizes, default=[1_000_000, 10_000_000])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2, help="raw XGBoost fits per size")
    parser.add_argument("--cpu", action="store_true", help="dry run: everything on CPUs")
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu-check.json")
    args = parser.parse_args()
    device = "cpu" if args.cpu else "cuda"
    report = {"bench": "gpu-check", "device": device, "python": platform.python_version(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "rounds": args.rounds, "cases": []}  # fmt: skip
    import xgboost

    report["xgboost"] = xgboost.__version__
    args.out.mkdir(parents=True, exist_ok=True)
    for rows in args.rows:
        report["cases"].append(scale_curves._attempt(
            lambda rows=rows: check_size(rows, rounds=args.rounds, device=device,
                                         repeat=args.repeat)))  # fmt: skip
        (args.out / "gpu-check.json").write_text(json.dumps(report, indent=2, default=str))
    ratios = [f"{c['rows']:,} rows {c['ratio_per_round']}" for c in report["cases"]
              if "ratio_per_round" in c]  # fmt: skip
    failed = [c["failed"].splitlines()[0] for c in report["cases"] if "failed" in c]
    print(
        f"GPU-CHECK SUMMARY ({device}): train stage / raw XGBoost seconds per round: "
        f"{'; '.join(ratios) or 'none measured'}" + (f"; FAILED: {failed}" if failed else "")
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
