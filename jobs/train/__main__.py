"""`python -m mlbatch_jobs.train --run <run-uri> --attempt <id>`."""

from mlbatch.stage import run_stage
from mlbatch_jobs.train.stage import run

if __name__ == "__main__":
    run_stage("train", run)
