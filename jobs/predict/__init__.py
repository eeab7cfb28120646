"""The predict stage: `python -m mlbatch_jobs.predict --run <run-uri> --attempt <id>`."""

import os

# Waiting OpenMP threads sleep rather than spin, which matters on shared cores (see
# mlbatch_jobs.train); read when XGBoost or LightGBM loads OpenMP, so set before either.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
