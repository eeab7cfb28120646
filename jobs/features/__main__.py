from mlbatch.stage import run_stage
from mlbatch_jobs.features.pipeline import run

if __name__ == "__main__":
    run_stage("features", run)
