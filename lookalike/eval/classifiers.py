"""Fitting the classifiers of two-step search (scikit-learn); prediction lives in
:mod:`lookalike.search.twostep`, which serving imports without scikit-learn."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..embedders.base import l2_normalise
from ..errors import ConfigError
from ..search.twostep import KINDS, Classifier

logger = logging.getLogger(__name__)

KNN_CHOICES = (1, 3, 5, 10, 20)
C_CHOICES = (1.0, 10.0, 100.0)  # inputs are unit vectors: weak regularisation usually fits best


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
