"""Where Tune keeps its own files: the train attempt's scratch folder in the run.

`<run-uri>/train/scratch/<attempt-id>/<family>/`: under the run's prefix, so trial
checkpoints survive the pod and reach the stage from a Ray cluster's workers, but beside
the attempt's outputs rather than among them, so the manifest lists only what the stage
made. The committed attempt's folder stays with the run (`tune.ExperimentAnalysis` or
`Tuner.restore` read it); `mlbatch gc` removes those of attempts no manifest adopted. On
s3:// Tune gets an explicit pyarrow filesystem that pickles without the keys
(mlbatch.arrow_s3): Tune stores it in tuner.pkl beside the trials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlbatch import storage
from mlbatch.runs import RunLayout


@dataclass(frozen=True)
class TuneStorage:
    uri: str  # for people: where to look
    path: str  # as Tune takes it: a local path, or bucket/key with filesystem
    filesystem: Any = None  # pyarrow.fs.FileSystem, None for a local path


def tune_storage(layout: RunLayout, attempt: str) -> TuneStorage:
    uri = layout.scratch_uri("train", attempt)
    local = storage.local_path(uri)
    if local is not None:
        local.mkdir(parents=True, exist_ok=True)
        return TuneStorage(uri=uri, path=str(local))
    filesystem, path = storage.arrow_filesystem(uri)
    return TuneStorage(uri=uri, path=path, filesystem=filesystem)
