"""Every model family the train stage can search, by the name the spec uses.

Families load on first use: a trial's worker then imports one library, not all of them
(skops alone takes seconds to import, which a busy node multiplies per worker).
"""

from __future__ import annotations

import importlib
from functools import cache

from mlbatch_jobs.train.models import Family

CLASSES = {
    "linear": "mlbatch_jobs.train.baselines:LinearFamily",
    "random_forest": "mlbatch_jobs.train.baselines:RandomForestFamily",
    "xgboost": "mlbatch_jobs.train.boosted:XGBoostFamily",
    "lightgbm": "mlbatch_jobs.train.boosted:LightGBMFamily",
}


@cache
def load_family(name: str) -> Family:
    module, _, cls = CLASSES[name].partition(":")
    return getattr(importlib.import_module(module), cls)()
