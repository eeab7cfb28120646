"""The train stage: `python -m mlbatch_jobs.train --run <run-uri> --attempt <id>`."""

import os

# OpenMP threads that wait by spinning steal the CPU from each other, and from neighbours,
# when cores are shared (a busy node, a container CPU limit): a 2-thread LightGBM refit
# measured 87 s spinning against 8 s sleeping on a loaded 2-core machine. XGBoost and
# LightGBM read this when they load OpenMP, so it is set before either is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
