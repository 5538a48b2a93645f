"""Two-step search: a classifier predicts the query's class, then the search runs only within
that class (the index's ``{"label": ...}`` filter).

Classifiers are fitted offline (:mod:`lookalike.eval.classifiers`, scikit-learn) and saved as a
plain ``.npz`` of arrays — no pickle, safe to load from anywhere. Prediction here is numpy
only, so serving needs neither scikit-learn nor joblib.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..embedders.base import check_vectors, l2_normalise
from ..errors import ConfigError

logger = logging.getLogger(__name__)

KINDS = ("knn", "logreg")
FORMAT = "lookalike-classifier/1"


@dataclass
class Classifier:
    """A fitted classifier over embedding vectors ``(n, dim) float32``."""

    kind: str
    classes: np.ndarray  # (C,) str
    arrays: dict[str, np.ndarray]  # knn: vectors, codes; logreg: coef, intercept
    params: dict[str, Any] = field(default_factory=dict)  # knn: k; plus model name/dim, training facts

    @property
    def dim(self) -> int:
        return int((self.arrays["vectors"] if self.kind == "knn" else self.arrays["coef"]).shape[1])

    def predict_codes(self, vectors: np.ndarray) -> np.ndarray:
        """``(n, dim)`` vectors → ``(n,) int64`` class indices into ``classes``."""
        x = l2_normalise(check_vectors(vectors, self.dim, "classifier input"))
        if self.kind == "logreg":
            return np.argmax(x @ self.arrays["coef"].T + self.arrays["intercept"], axis=1)
        train, codes = self.arrays["vectors"], self.arrays["codes"]
        k = min(int(self.params["k"]), len(train))
        out = np.empty(len(x), dtype=np.int64)
        for start in range(0, len(x), 1024):
            scores = x[start:start + 1024] @ train.T
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < len(train) else np.argsort(-scores, axis=1)
            votes = np.zeros((len(scores), len(self.classes)), dtype=np.int64)
            np.add.at(votes, (np.arange(len(scores))[:, None], codes[top]), 1)
            out[start:start + 1024] = votes.argmax(axis=1)  # ties → the lowest class index, like scikit-learn
        return out

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """``(n, dim)`` vectors → ``(n,)`` predicted class labels (str)."""
        return self.classes[self.predict_codes(vectors)]

    def check_compatible(self, embedder) -> None:
        """Refuse an embedder whose vectors this classifier was not trained on."""
        if embedder.dim != self.dim:
            raise ConfigError(f"the classifier takes {self.dim}-d vectors but the embedder {embedder.name!r} "
                              f"makes {embedder.dim}-d ones; train it with the same --backbone/--head")
        trained = self.params.get("model")
        if trained and trained != embedder.name:
            raise ConfigError(f"the classifier was trained on {trained!r} vectors but the embedder is "
                              f"{embedder.name!r}; pass the same --backbone/--head or retrain it")

    def save(self, path: Path) -> Path:
        """Write ``.npz`` arrays plus a JSON header (no pickled objects)."""
        from ..fsutil import atomic_write

        header = json.dumps({"format": FORMAT, "kind": self.kind, "params": self.params})
        arrays = {"header": np.asarray(header), "classes": self.classes.astype(str), **self.arrays}
        atomic_write(Path(path), lambda fh: np.savez_compressed(fh, **arrays))
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> Classifier:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                arrays = {k: data[k] for k in data.files if k not in ("header", "classes")}
                classes = data["classes"].astype(str)
        except FileNotFoundError:
            raise ConfigError(f"classifier file {path} does not exist") from None
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"{path} is not a lookalike classifier: {exc}") from None
        if header.get("format") != FORMAT or header.get("kind") not in KINDS:
            raise ConfigError(f"{path}: unsupported classifier format {header.get('format')!r}")
        return cls(header["kind"], classes, arrays, header.get("params", {}))


def classify_then_search(classifier: Classifier, index, vectors: np.ndarray, k: int,
                         filter: Mapping[str, Any] | None = None) -> tuple[np.ndarray, list[list]]:
    """Predict each query's class, then search only that class → ``(predicted (n,) str, hits)``.

    A ``label`` in ``filter`` (chosen by the user) wins over the prediction; other filter fields
    are kept. Queries predicted the same class are searched together.
    """
    predicted = classifier.predict(vectors)
    hits: list[list] = [[] for _ in range(len(predicted))]
    for label in np.unique(predicted):
        rows = np.flatnonzero(predicted == label)
        flt = {"label": str(label), **(dict(filter) if filter else {})}
        for row, found in zip(rows, index.search(vectors[rows], k, flt)):
            hits[row] = found
    return predicted, hits
