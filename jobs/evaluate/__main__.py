"""`python -m mlbatch_jobs.evaluate --run <run-uri> --attempt <id>`."""

from mlbatch.stage import run_stage
from mlbatch_jobs.evaluate.stage import run

if __name__ == "__main__":
    run_stage("evaluate", run)
