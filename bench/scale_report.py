"""The scale benchmark's arithmetic and output: log-log slopes between sizes, the targets
(pass/fail), a markdown table and a log-log plot for docs/scale.md."""

from __future__ import annotations

import math
from pathlib import Path

from mlbatch.spec import STAGES

SLOPE_TARGET = 1.1  # cost may grow at most ~linearly with rows: no hidden quadratic step
FLAT_TARGET = 0.3  # "flat": 10x the rows costs at most 2x (reading the table still grows)
# Table rows beyond which a stage works on a sample: explore.sample_rows; evaluate's
# bootstrap resamples at most evaluate.bootstrap_rows (100,000) test rows, and the test
# split is a tenth of the table (the flights spec's features.split.test: 0.1).
SAMPLE_ROWS = {"explore": 100_000, "evaluate": 1_000_000}
PER_ROUND_TARGET = 1.2
MARK_START, MARK_END = "<!-- scale-results:start -->", "<!-- scale-results:end -->"


def curves(cases: list[dict]) -> dict[str, list[tuple[int, dict]]]:
    """Per curve (each stage, and the anchors), the (rows, cost) points measured."""
    found: dict[str, list[tuple[int, dict]]] = {}
    for case in sorted(cases, key=lambda c: c["rows"]):
        rows = case["rows"]
        for stage, cost in case.get("stages", {}).items():
            found.setdefault(stage, []).append((rows, cost))
        etl_only = case.get("etl_only", {})
        if "stage_profile" in etl_only and "etl" not in case.get("stages", {}):
            found.setdefault("etl", []).append((rows, etl_only["stage_profile"]))
        for name, key in (("plain pandas ETL", "plain_pandas_etl"),
                          ("plain XGBoost", "plain_xgboost"),
                          ("etl on Dask cluster", "dask_cluster_etl")):  # fmt: skip
            cost = case.get(key, {})
            if "wall_s" in cost:
                point = {"wall_s": cost["wall_s"], "cpu_s": cost["cpu_s"],
                         "peak_rss_mib": cost["peak_rss_mib"]}  # fmt: skip
                found.setdefault(name, []).append((rows, point))
    return found


def slope(a: float, b: float, rows_a: int, rows_b: int) -> float | None:
    if a <= 0 or b <= 0:
        return None
    return round(math.log(b / a) / math.log(rows_b / rows_a), 2)


def slopes(cases: list[dict]) -> dict[str, list[dict]]:
    result = {}
    for name, points in curves(cases).items():
        pairs = []
        for (rows_a, a), (rows_b, b) in zip(points, points[1:], strict=False):
            pairs.append({"from": rows_a, "to": rows_b,
                          **{f"{k}_slope": slope(a[k], b[k], rows_a, rows_b)
                             for k in ("wall_s", "cpu_s", "peak_rss_mib")}})  # fmt: skip
        result[name] = pairs
    return result


def targets(report: dict, slope_on: str = "cpu_s") -> list[dict]:
    """Each target: its name, PASS / FAIL / NOT MEASURED, and the numbers behind it. The
    slopes are judged on `slope_on` (CPU-seconds by default: on a shared machine, wall time
    also measures the neighbours)."""
    found, by_slope, key = [], report["slopes"], f"{slope_on}_slope"
    measure = "CPU-seconds" if slope_on == "cpu_s" else "wall-time"
    for stage in STAGES:
        pairs = [p for p in by_slope.get(stage, []) if p[key] is not None]
        worst = max((p[key] for p in pairs), default=None)
        found.append(_target(f"{stage}: {measure} slope <= {SLOPE_TARGET}", worst,
                             worst is not None and worst <= SLOPE_TARGET))  # fmt: skip
    for stage, sample in SAMPLE_ROWS.items():
        pairs = [p for p in by_slope.get(stage, []) if p["from"] >= sample and p[key] is not None]
        worst = max((p[key] for p in pairs), default=None)
        found.append(_target(f"{stage}: flat beyond {sample:,} rows ({measure} slope <= "
                             f"{FLAT_TARGET})", worst,
                             worst is not None and worst <= FLAT_TARGET))  # fmt: skip
    ratio, rows = per_round_ratio(report["cases"])
    found.append(_target(f"train: per-round cost <= {PER_ROUND_TARGET}x plain XGBoost at the "
                         f"largest size ({rows or 0:,} rows)", ratio,
                         ratio is not None and ratio <= PER_ROUND_TARGET))  # fmt: skip
    clusters = [c["dask_cluster_etl"] for c in report["cases"]
                if "wall_s" in c.get("dask_cluster_etl", {})]  # fmt: skip
    best = max(clusters, default=None,
               key=lambda c: c["output_in_memory_mib"] / c["worker_memory_limit_mib"])  # fmt: skip
    times = None if best is None else best["output_in_memory_mib"] / best["worker_memory_limit_mib"]
    limit = "" if best is None else f" ({best['worker_memory_limit_mib']} MiB)"
    found.append(_target(f"etl on a Dask cluster: a table >= 10x one worker's memory limit{limit}",
                         None if times is None else round(times, 1),
                         times is not None and times >= 10))  # fmt: skip
    return found


def per_round_ratio(cases: list[dict]) -> tuple[float | None, int | None]:
    """The train trial's seconds per round over plain XGBoost's, at the largest full size."""
    for case in sorted(cases, key=lambda c: -c["rows"]):
        trials = [t for t in case.get("train_trials", []) if t.get("s_per_round")]
        plain = case.get("plain_xgboost", {})
        if trials and plain.get("s_per_round"):
            return round(trials[0]["s_per_round"] / plain["s_per_round"], 2), case["rows"]
    return None, None


def _target(name: str, value, passed: bool) -> dict:
    status = "NOT MEASURED" if value is None else "PASS" if passed else "FAIL"
    return {"target": name, "value": value, "status": status}


def markdown(report: dict) -> str:
    lines = [f"Measured {report['started']} on {report['cpus']} CPUs "
             f"(`uptime` before: `{report['uptime']}`; after: `{report['uptime_after']}`), "
             f"command `{report['command']}`, {report['rounds']} boosting rounds."
             + "".join(f" Merged: `{m['command']}` of {m['started']} (`uptime` before: "
                       f"`{m['uptime']}`; after: `{m['uptime_after']}`)."
                       for m in report.get("merged", [])), "",
             "| rows | stage or anchor | wall s | CPU s | peak RSS MiB |",
             "|---:|---|---:|---:|---:|"]  # fmt: skip
    for name, points in curves(report["cases"]).items():
        for rows, cost in points:
            lines.append(f"| {rows:,} | {name} | {cost['wall_s']:.1f} | {cost['cpu_s']:.1f} | "
                         f"{cost['peak_rss_mib']:,} |")  # fmt: skip
    lines += ["", "Log-log slopes (wall / CPU / peak RSS) between consecutive sizes:", "",
              "| stage or anchor | from → to rows | wall | CPU | peak RSS |",
              "|---|---|---:|---:|---:|"]  # fmt: skip
    for name, pairs in report["slopes"].items():
        for p in pairs:
            lines.append(f"| {name} | {p['from']:,} → {p['to']:,} | {p['wall_s_slope']} | "
                         f"{p['cpu_s_slope']} | {p['peak_rss_mib_slope']} |")  # fmt: skip
    lines += ["", "Train, one trial (fixed work) against plain XGBoost `hist` on the same rows "
              "and threads:", "", "| rows | trial rounds | trial fit s | trial s/round | "
              "plain fit s | plain fit CPU s | plain s/round | ratio |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for case in report["cases"]:
        trials, plain = case.get("train_trials") or [{}], case.get("plain_xgboost", {})
        trial = trials[0]
        if trial.get("s_per_round") and plain.get("s_per_round"):
            plain_cpu = plain.get("fit_cpu_s", "–")
            lines.append(
                f"| {case['rows']:,} | {int(trial['rounds'])} | {trial['fit_s']:.2f} | "
                f"{trial['s_per_round']:.4f} | {plain['fit_s']:.2f} | {plain_cpu} | "
                f"{plain['s_per_round']:.4f} "
                f"| {trial['s_per_round'] / plain['s_per_round']:.2f} |"
            )
    extras = _extras(report["cases"])
    if extras:
        lines += ["", *extras]
    lines += ["", "| target | value | result |", "|---|---:|---|"]
    lines += [f"| {t['target']} | {t['value']} | {t['status']} |" for t in report["targets"]]
    return "\n".join(lines)


def _extras(cases: list[dict]) -> list[str]:
    """The options' outcomes, and anything that failed, one line each."""
    lines = []
    for case in cases:
        if case.get("note"):
            lines.append(f"- {case['rows']:,} rows: {case['note']}")
        for key in ("plain_pandas_etl", "plain_xgboost", "etl_only", "dask_cluster_etl",
                    "data_parallel"):  # fmt: skip
            value = case.get(key)
            if not isinstance(value, dict):
                continue
            if "failed" in value or "skipped" in value:
                why = value.get("failed") or value.get("skipped")
                lines.append(
                    f"- {case['rows']:,} rows, {key}: {why.strip().splitlines()[-1][:300]}"
                )
            elif key == "dask_cluster_etl":
                lines.append(
                    f"- {case['rows']:,} rows, etl on a Dask cluster ({value['dask_workers']} "
                    f"workers of {value['worker_memory_limit_mib']} MiB): {value['wall_s']} s, "
                    f"output {value.get('output_in_memory_mib')} MiB in memory, largest worker "
                    f"RSS {value['peak_worker_rss_mib']} MiB"
                )
            elif key == "data_parallel":
                train = value["train"]
                line = (f"- {case['rows']:,} rows, train with data_parallel: always: "
                        f"{train['wall_s']} s wall, {train['cpu_s']} CPU s in its pod")  # fmt: skip
                parallel = _first_rate(value.get("train_trials"))
                # The one-worker trial of the same bench run (its load), if recorded.
                single = value.get("one_worker_s_per_round")
                if parallel:
                    nodes = value.get("ray_nodes")
                    line += (f"; the trial {parallel:.4f} s a round"
                             + (f" on {nodes} Ray nodes" if nodes else "")
                             + (f", one worker {single:.4f} s" if single else ""))  # fmt: skip
                lines.append(line)
    return lines


def _first_rate(trials: list[dict] | None) -> float | None:
    """The seconds per round of a case's (one) trial."""
    rates = [t["s_per_round"] for t in trials or [] if t.get("s_per_round")]
    return rates[0] if rates else None


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("cpu_s", "CPU-seconds"), ("wall_s", "wall time (s)"),
              ("peak_rss_mib", "peak RSS (MiB)"))  # fmt: skip
    figure, axes = plt.subplots(1, len(panels), figsize=(13, 4), dpi=80)
    for name, points in curves(report["cases"]).items():
        if len(points) < 2:
            continue
        style = "--" if name.startswith("plain") or "Dask" in name else "-"
        rows = [r for r, _ in points]
        for axis, (key, _) in zip(axes, panels, strict=True):
            axis.plot(rows, [c[key] for _, c in points], style, marker="o", label=name)
    for axis, (_, label) in zip(axes, panels, strict=True):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("rows")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.suptitle(f"mlbatch stages vs rows, local executor ({report['started']})", fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_docs(report: dict, doc: Path, png: Path) -> None:
    """Replace docs/scale.md's results section (between the markers) and the plot."""
    plot(report, png)
    section = f"{MARK_START}\n![cost curves]({png.name})\n\n{markdown(report)}\n{MARK_END}"
    text = doc.read_text() if doc.exists() else f"# Scale\n\n{MARK_START}\n{MARK_END}\n"
    if MARK_START not in text or MARK_END not in text:
        text = f"{text.rstrip()}\n\n{MARK_START}\n{MARK_END}\n"
    head, rest = text.split(MARK_START, 1)
    tail = rest.split(MARK_END, 1)[1]
    doc.write_text(head + section + tail)
