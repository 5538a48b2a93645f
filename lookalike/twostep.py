"""Two-step search: a classifier predicts the query's class, then the search runs only within
that class (the index's ``{"label": ...}`` filter).

Classifiers are fitted with scikit-learn (k-nearest neighbours, as in the original design, or
logistic regression) and saved as a plain ``.npz`` of arrays — no pickle, safe to load from
anywhere. Prediction is numpy only, so serving needs neither scikit-learn nor joblib.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .embedders.base import check_vectors, l2_normalise
from .errors import ConfigError

logger = logging.getLogger(__name__)

KINDS = ("knn", "logreg")
FORMAT = "lookalike-classifier/1"
KNN_CHOICES = (1, 3, 5, 10, 20)
C_CHOICES = (1.0, 10.0, 100.0)  # inputs are unit vectors: weak regularisation usually fits best


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
        from .fsutil import atomic_write

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


def fit_classifier(vectors: np.ndarray, labels: Sequence[str], kind: str = "knn", *, k: int | None = None,
                   c: float | None = None, val_vectors: np.ndarray | None = None, val_labels: Sequence[str] | None = None,
                   model: str | None = None, seed: int = 0) -> Classifier:
    """Fit a ``knn`` or ``logreg`` classifier on ``(n, dim)`` vectors with string labels.

    With a validation split, kNN's ``k`` (from 1, 3, 5, 10, 20) or logistic regression's ``c``
    (from 1, 10, 100), when not given, is the one with the best validation accuracy; the final
    classifier is then fitted on the training AND validation vectors.
    """
    if kind not in KINDS:
        raise ConfigError(f"classifier kind must be one of {', '.join(KINDS)}, got {kind!r}")
    x = l2_normalise(np.asarray(vectors, dtype=np.float32))
    classes, codes = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    if len(classes) < 2:
        raise ConfigError("a classifier needs at least 2 classes")
    params: dict[str, Any] = {"model": model, "n_train": int(len(x))}
    have_val = val_vectors is not None and val_labels is not None and len(val_labels) > 0
    if have_val:
        val_x = l2_normalise(np.asarray(val_vectors, dtype=np.float32))
        val_y = np.asarray(val_labels, dtype=str)
    if have_val and not np.all(np.isin(val_y, classes)):
        raise ConfigError("validation labels include classes absent from training")
    if kind == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        def make(choice):
            return KNeighborsClassifier(n_neighbors=choice)
        choices, name, default = [n for n in KNN_CHOICES if n <= len(x)], "k", 5
    else:
        from sklearn.linear_model import LogisticRegression

        def make(choice):
            return LogisticRegression(C=choice, max_iter=2000, random_state=seed)
        choices, name, default = list(C_CHOICES), "c", 1.0
    chosen = k if kind == "knn" else c
    if chosen is None and have_val:
        scores = {choice: float((make(choice).fit(x, classes[codes]).predict(val_x) == val_y).mean())
                  for choice in choices}
        chosen = max(scores, key=lambda n: (scores[n], -n))  # ties → the smaller k / stronger regularisation
        params[f"val_accuracy_by_{name}"] = {str(n): v for n, v in scores.items()}
        params["val_accuracy"] = scores[chosen]
        logger.info("%s: validation accuracy by %s %s → %s", kind, name, scores, chosen)
    chosen = default if chosen is None else chosen
    params[name] = chosen
    if have_val:  # the chosen setting then uses every labelled vector available
        x = np.concatenate([x, val_x])
        codes = np.concatenate([codes, np.searchsorted(classes, val_y)])
    params["n_train"] = int(len(x))
    if kind == "knn":
        arrays = {"vectors": x.astype(np.float32), "codes": codes.astype(np.int64)}
    else:
        fitted = make(chosen).fit(x, codes)
        coef, intercept = fitted.coef_, fitted.intercept_
        if len(classes) == 2:  # binary: scikit-learn keeps one row; make it a two-class argmax
            coef, intercept = np.vstack([-coef, coef]) / 2, np.array([-intercept[0], intercept[0]]) / 2
        arrays = {"coef": coef.astype(np.float32), "intercept": intercept.astype(np.float32)}
    return Classifier(kind, classes, arrays, params)


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
