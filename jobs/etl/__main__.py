from mlbatch.stage import run_stage
from mlbatch_jobs.etl.stage import run

if __name__ == "__main__":
    run_stage("etl", run)
