"""`python -m mlbatch_jobs.explore --run <run-uri> --attempt <id>`."""

from mlbatch.stage import run_stage
from mlbatch_jobs.explore.stage import run

run_stage("explore", run)
