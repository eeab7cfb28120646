"""The `evaluate:` section."""

from __future__ import annotations

from mlbatch.spec.base import Model


class EvaluateSpec(Model):
    pass
