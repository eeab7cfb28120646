"""scikit-learn models on disk: skops files, loaded only after every type in them is checked
against an explicit allow-list (a model read from a shared bucket must not run code).

No Ray here: evaluate and predict load the train stage's scikit-learn models with this.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline

from mlbatch.errors import BadInput
from mlbatch.scoring import SKLEARN_TRUSTED_TYPES

# Exactly the types the linear and random forest families save, shared with the scoring
# code that loads them in evaluate, predict and the registry.
TRUSTED_TYPES = SKLEARN_TRUSTED_TYPES


def save_model(model: Pipeline, path: Path) -> Path:
    import skops.io  # here, not at the top: importing it takes seconds

    skops.io.dump(model, path)
    return path


def load_model(path: Path) -> Pipeline:
    """The Pipeline in a skops file; BadInput if the file holds a type not on the list."""
    import skops.io

    untrusted = sorted(set(skops.io.get_untrusted_types(file=path)) - TRUSTED_TYPES)
    if untrusted:
        raise BadInput(f"{path.name} holds types outside the trusted list: {untrusted[:5]}")
    return skops.io.load(path, trusted=sorted(TRUSTED_TYPES))


def predict(model: Pipeline, x: np.ndarray) -> np.ndarray:
    """Probabilities of class 1 (binary), of each class (multiclass), or values."""
    if not is_classifier(model):
        return model.predict(x)
    probabilities = model.predict_proba(x)
    return probabilities[:, 1] if probabilities.shape[1] == 2 else probabilities
