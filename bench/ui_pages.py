"""Page load times of `mlbatch ui` over an existing storage (the flights demo's after
`make run`), not part of `make bench` (it needs runs to show):

    python bench/ui_pages.py [--storage mlbatch-data] [--requests 20] [--loads 5]

Starts `mlbatch ui` as a user does, then for each page type (runs list, the newest run,
its live part, the two newest compared, the registry, a model, the newest run's explore
report and train log, the JSON list) measures, after two warm-up requests:
- server: `--requests` sequential GETs over one loopback connection each, time to the
  last byte (median and 95th percentile);
- browser: `--loads` loads in headless Chromium (tests/browser.py's setup), the
  Navigation Timing `loadEventEnd` (HTML pages only: styles, script, images included).
Prints a table and writes bench/results/ui-pages.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from browser import chromium  # noqa: E402

from mlbatch import registry, runs, storage  # noqa: E402
from mlbatch.controller.cli_common import storage_root  # noqa: E402
from mlbatch.manifest import load_manifest  # noqa: E402
from mlbatch.runs import RunLayout  # noqa: E402

RESULTS = REPO / "bench" / "results"
NAVIGATION = "return performance.getEntriesByType('navigation')[0].toJSON();"


def page_paths(root: str) -> dict[str, str]:
    """One path per page type, from what the storage holds."""
    ids = runs.list_run_ids(root)
    if len(ids) < 2:
        sys.exit(f"{root} holds {len(ids)} runs: run the demo twice (make run)")
    newest = RunLayout(root, ids[0])
    paths = {
        "runs list": "/",
        "run": f"/runs/{ids[0]}",
        "run, live part": f"/runs/{ids[0]}/live",
        "compare two runs": f"/compare?run={ids[0]}&run={ids[1]}",
        "models": "/models",
    }
    names = registry.model_names(root)
    if names:
        paths["model"] = f"/models/{names[0]}"
    explore = load_manifest(newest, "explore")
    if explore is not None and "report.html" in explore[0].outputs:
        paths["explore report (HTML)"] = f"/runs/{ids[0]}/explore/files/report.html"
    train = (runs.read_state(newest) or {}).get("stages", {}).get("train", {})
    if train.get("attempts"):
        paths["train log"] = f"/runs/{ids[0]}/train/attempts/{train['attempts'][-1]['id']}/log"
    paths["JSON: /api/runs"] = "/api/runs"
    return paths


def server_times(host: str, port: int, path: str, requests: int) -> tuple[list[float], int]:
    sizes, times = set(), []
    for number in range(requests + 2):
        connection = http.client.HTTPConnection(host, port, timeout=60)
        start = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - start
        connection.close()
        assert response.status == 200, (path, response.status)
        sizes.add(len(body))
        if number >= 2:
            times.append(elapsed * 1000)
    return times, max(sizes)


def browser_times(driver, url: str, loads: int) -> list[float]:
    times = []
    for _ in range(loads + 1):
        driver.get(url)
        times.append(driver.execute_script(NAVIGATION)["loadEventEnd"])
    return times[1:]  # the first load fills the cache with the stylesheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", default="mlbatch-data")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    root = storage_root(args.storage)
    paths = page_paths(root)
    objects = len(storage.list_uris(runs.runs_prefix(root)))
    ui = subprocess.Popen(
        [sys.executable, "-m", "mlbatch.controller.cli", "ui", "--storage", root, "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        base = re.search(r"(http://\S+?)/ ", ui.stdout.readline()).group(1)
        host, port = base.removeprefix("http://").rsplit(":", 1)
        results = {}
        with chromium(window="1280,900") as driver:
            for kind, path in paths.items():
                served, size = server_times(host, int(port), path, args.requests)
                entry = {"path": path, "bytes": size,
                         "server_ms_median": statistics.median(served),
                         "server_ms_p95": statistics.quantiles(served, n=20)[-1]}  # fmt: skip
                if not path.startswith("/api/") and not path.endswith("/log"):
                    loaded = browser_times(driver, base + path, args.loads)
                    entry["browser_load_ms_median"] = statistics.median(loaded)
                results[kind] = entry
    finally:
        ui.terminate()
        ui.wait(timeout=10)
    report = {"storage": root, "runs": len(runs.list_run_ids(root)), "objects_under_runs": objects,
              "requests": args.requests, "loads": args.loads, "pages": results}  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ui-pages.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['runs']} runs, {objects} objects under runs/ in {root}")
    print(f"{'page':<24}{'bytes':>10}{'server median':>15}{'p95':>9}{'browser load':>14}")
    for kind, entry in results.items():
        loaded = entry.get("browser_load_ms_median")
        print(f"{kind:<24}{entry['bytes']:>10}{entry['server_ms_median']:>12.1f} ms"
              f"{entry['server_ms_p95']:>6.1f} ms"
              + (f"{loaded:>11.0f} ms" if loaded is not None else ""))  # fmt: skip


if __name__ == "__main__":
    main()
