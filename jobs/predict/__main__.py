"""`python -m mlbatch_jobs.predict --run <run-uri> --attempt <id>`."""

from mlbatch.stage import run_stage
from mlbatch_jobs.predict.stage import run

if __name__ == "__main__":
    run_stage("predict", run)
