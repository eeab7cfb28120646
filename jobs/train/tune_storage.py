"""Where Tune keeps its own files: under the run's prefix, so they survive the pod.

`<run-uri>/train/tune/<attempt-id>/<family>/`: beside the attempt's outputs rather than
among them, so the manifest lists only what the stage made (on file://, the attempt folder
is published as it is). On s3:// Tune gets an explicit pyarrow filesystem holding the
run's credentials, which a Ray cluster's workers use as they are.
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
    uri = storage.join(layout.uri, "train", "tune", attempt)
    local = storage.local_path(uri)
    if local is not None:
        local.mkdir(parents=True, exist_ok=True)
        return TuneStorage(uri=uri, path=str(local))
    filesystem, path = storage.arrow_filesystem(uri)
    return TuneStorage(uri=uri, path=path, filesystem=filesystem)
