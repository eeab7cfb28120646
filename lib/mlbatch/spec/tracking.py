"""The `tracking:` section: where the controller mirrors a run for experiment trackers."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from mlbatch.spec.base import Model


class MlflowTracking(Model):
    enabled: bool = Field(default=True, description="false: no export, even with the env var")
    uri: str | None = Field(
        default=None,
        description="the tracking server (http(s)://host:port); default: MLFLOW_TRACKING_URI",
    )
    experiment: str | None = Field(
        default=None, min_length=1, description="the MLflow experiment; default: the spec's name"
    )

    @field_validator("uri")
    @classmethod
    def _no_password(cls, uri: str | None) -> str | None:
        # spec.json is kept with the run and copied into the registry: a password in it
        # would be stored everywhere. MLflow reads credentials from its own variables.
        if uri is not None and urlsplit(uri).password is not None:
            raise ValueError(
                "a password in the tracking URI would be stored with the run: set "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or "
                "MLFLOW_TRACKING_TOKEN) in the controller's environment instead"
            )
        return uri


class TrackingSpec(Model):
    mlflow: MlflowTracking | None = Field(
        default=None,
        description="mirror the run in MLflow (on too when MLFLOW_TRACKING_URI is set); "
        "mlbatch's run folder and registry stay the source of truth",
    )
