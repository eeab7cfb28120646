"""`python -m mlbatch_jobs.features --run <run-uri> --attempt <id>`."""

from mlbatch.stage import run_stage
from mlbatch_jobs.features.stage import run

if __name__ == "__main__":
    run_stage("features", run)
