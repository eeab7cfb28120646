"""Registration, promotion and `mlbatch predict` on a real S3 server (SeaweedFS): the model,
its transformer and the predictions all live in the bucket."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from pipeline_checks import mlbatch, run_json
from sklearn import datasets
from small_tables import QUICK

from mlbatch import registry, storage

pytestmark = pytest.mark.slow


def test_register_promote_and_predict_on_s3(s3_env):
    table = datasets.load_breast_cancer(as_frame=True).frame
    table.insert(0, "patient", range(len(table)))
    storage.write_bytes(
        storage.join(s3_env, "in/cancer.csv"), table.iloc[:500].to_csv(index=False).encode()
    )
    unseen = table.iloc[500:].drop(columns=["target"])
    storage.write_bytes(storage.join(s3_env, "in/unseen.csv"), unseen.to_csv(index=False).encode())

    result = mlbatch(
        "run", "--data", storage.join(s3_env, "in/cancer.csv"), "--target", "target",
        "--storage", s3_env, "--set", "id_columns=[patient]", "--set", "evaluate.bootstrap=20",
        "--output", "json", *QUICK,
    )  # fmt: skip
    summary = run_json(result)
    assert result.returncode == 0, result.stderr
    assert summary["metrics"]["promotion"]["decision"] == "promoted"
    record = registry.resolve(s3_env, registry.parse_reference("cancer@production"))
    assert record["run_id"] == summary["run_id"]
    assert storage.exists(
        storage.join(registry.version_uri(s3_env, "cancer", 1), "transformer.skops")
    )

    output = storage.join(s3_env, "out/preds.parquet")
    done = mlbatch(
        "predict", "--model", "cancer@production", "--input",
        storage.join(s3_env, "in/unseen.csv"), "--output", output, "--storage", s3_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    predictions = pd.read_parquet(io.BytesIO(storage.read_bytes(output)))
    assert list(predictions.columns) == ["patient", "prediction", "probability"]
    assert predictions["patient"].tolist() == unseen["patient"].tolist()
    assert (predictions["prediction"] == table.iloc[500:]["target"].to_numpy()).mean() > 0.85
