"""Label-free post-processing variants of backbone vectors, evaluated like every other approach.

Each variant is fitted on the gallery it searches (the collection being indexed) without its
labels. ``power-center`` is the transform lookalike ships (:mod:`lookalike.index.postprocess`);
the others are compared beside it:

    pn             power normalisation: l2(sign(x)·sqrt|x|)
    center         x minus the collection mean, l2
    power-center   pn, then centering (the shipped option)
    pw<d>-<p>      pn, then PCA to d dims with each component scaled by λ^(-p/2)
                   (p = 0: plain PCA, p = 1: full whitening; in between: shrinkage), l2
    pc-dba<k>      power-center, then database-side augmentation: each entry becomes the
                   similarity³-weighted sum of its k nearest entries (itself included)
    pc-qe<k>       power-center, then α-query expansion (α = 3): the query plus its k nearest
                   entries weighted by similarity³ — a second search per query
    gem3, multiscale   other pooling of the feature map (see :mod:`lookalike.eval.spatial`)

Queries go through the same transform; under leave-one-out, query expansion never uses the
query's own entry. Timing (:func:`~lookalike.eval.evaluate.time_approaches`) includes the
transform and the second search of query expansion.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..embedders.base import l2_normalise
from ..index.postprocess import PostProcess, power_normalise
from .evaluate import ApproachResult, Gallery, build_index
from .metrics import KS, average_precision_at_r, rank_gallery, ranked_relevance, relevant_counts

VARIANTS = ("pn", "center", "power-center", "pw256-0", "pw256-0.25", "pw256-0.5", "pw256-1",
            "pc-dba3", "pc-qe2", "pc-dba3-qe2")
SPATIAL = ("gem3", "multiscale")
ALPHA = 3.0  # similarity exponent of α-QE and α-DBA (Radenović et al. 2018)
SHIPPED = "power-center"


@dataclass
class Fitted:
    """A variant fitted on a collection: the stored vectors and how a query is transformed."""

    title: str
    db: np.ndarray  # (n, dim) float32, what the index stores
    query: Callable[[np.ndarray], np.ndarray]  # backbone (q, d) → (q, dim) before any expansion
    qe: int = 0  # neighbours of α-query expansion (0: none)


def _whiten(y: np.ndarray, dim: int, power: float):
    from .pca import fit_pca

    dim = max(1, min(dim, len(y) - 1, y.shape[1]))
    pca = fit_pca(y, dim)
    ratio = np.maximum(pca.explained_variance_ratio, 1e-6 * pca.explained_variance_ratio.max())
    scale = (ratio ** (-power / 2)).astype(np.float32)
    project = lambda v: l2_normalise(((v - pca.mean) @ pca.components.T) * scale)  # noqa: E731
    return dim, project


def expand(queries: np.ndarray, db: np.ndarray, k: int, self_rows: np.ndarray | None = None) -> np.ndarray:
    """α-weighted sum of each query and its ``k`` nearest ``db`` rows (its own row left out), l2."""
    ranked = rank_gallery(queries, db, k, self_rows=self_rows)
    near = db[np.maximum(ranked, 0)]  # (q, k, d)
    sims = np.einsum("qd,qkd->qk", queries, near)
    weights = np.where(ranked >= 0, np.maximum(sims, 0) ** ALPHA, 0)
    return l2_normalise(queries + np.einsum("qk,qkd->qd", weights, near))


def fit_variant(name: str, x: np.ndarray) -> Fitted:
    """Fit variant ``name`` of :data:`VARIANTS` on the collection's backbone vectors ``(n, d)``."""
    if name == "pn":
        return Fitted("power norm", power_normalise(x), power_normalise)
    if name == "center":
        mean = x.mean(axis=0)
        return Fitted("centered", l2_normalise(x - mean), lambda q: l2_normalise(q - mean))
    if name.startswith("pw"):
        dim, power = name[2:].split("-")
        d, project = _whiten(power_normalise(x), int(dim), float(power))
        return Fitted(f"power norm + PCA {d} ^{power}", project(power_normalise(x)),
                      lambda q: project(power_normalise(q)))
    if name == SHIPPED or name.startswith("pc-"):
        t = PostProcess.fit("power-center", x)
        fitted = Fitted("power norm + center", t.apply(x), t.apply)
        for step in name.split("-")[1:] if name != SHIPPED else []:
            if step.startswith("dba"):
                fitted.db = expand(fitted.db, fitted.db, int(step[3:]) - 1, self_rows=np.arange(len(x)))
                fitted.title += f" + DBA {step[3:]}"
            elif step.startswith("qe"):
                fitted.qe = int(step[2:])
                fitted.title += f" + α-QE {step[2:]}"
        return fitted
    raise ValueError(f"unknown post-processing variant {name!r}; choose from {', '.join(VARIANTS)}")


def _precision(ranked: np.ndarray, labels: np.ndarray, ks=KS) -> dict[int, float]:
    hit = labels[np.maximum(ranked, 0)] == labels[:, None]
    hit &= ranked >= 0
    return {k: float(hit[:, :k].mean()) for k in ks}


def _map(queries, db, labels: list[str], self_rows) -> float:
    r = relevant_counts(labels, labels, self_in_gallery=True, include_self=self_rows is None)
    depth = int(max(r.max(initial=1), 1))
    ranked = rank_gallery(queries, db, depth, self_rows=self_rows)
    ap = average_precision_at_r(ranked_relevance(ranked, labels, labels), r)
    return float(np.nanmean(ap)) if np.any(~np.isnan(ap)) else float("nan")


def evaluate_fitted(gallery: Gallery, name: str, fitted: Fitted, x: np.ndarray, *, timing: bool = True,
                    title: str | None = None) -> ApproachResult:
    """P@K and mAP@R (both protocols), index size and (for timing) one real search per query row."""
    labels = np.asarray(gallery.labels, dtype=object)
    own = np.arange(len(x))
    base = fitted.query(x)
    queries = {"loo": expand(base, fitted.db, fitted.qe, own) if fitted.qe else base,
               "self": expand(base, fitted.db, fitted.qe) if fitted.qe else base}
    loo = rank_gallery(queries["loo"], fitted.db, max(KS), self_rows=own)
    with_self = rank_gallery(queries["self"], fitted.db, max(KS))
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=gallery.workdir))
    index, size = build_index(path, gallery.ids, fitted.db, list(gallery.labels),
                              {"name": name, "dim": int(fitted.db.shape[1])})
    result = ApproachResult(name, title or fitted.title, int(fitted.db.shape[1]), _precision(loo, labels),
                            _precision(with_self, labels), _map(queries["loo"], fitted.db, list(labels), own),
                            _map(queries["self"], fitted.db, list(labels), None), None, None, size)
    if timing:
        def search_one(row: int):
            q = fitted.query(x[row:row + 1])
            if fitted.qe:  # the second search of query expansion, through the real index
                hits = index.search(q, fitted.qe)[0]
                near = index.get_vectors([h.id for h in hits])
                w = np.maximum(np.asarray([h.score for h in hits], np.float32), 0) ** ALPHA
                q = l2_normalise(q + w @ near)
            return index.search(q, max(KS))

        result.search_one = search_one
    return result


def copy_recall(fitted: Fitted, copies: np.ndarray, source: np.ndarray, kinds: list[str]) -> dict[str, float]:
    """Copy detection: each edited copy (not in the collection) as a query; the hit is its original."""
    q = fitted.query(copies)
    if fitted.qe:
        q = expand(q, fitted.db, fitted.qe)
    ranked = rank_gallery(q, fitted.db, 5)
    found = ranked == np.asarray(source)[:, None]
    out = {"recall_at_1": float(found[:, 0].mean()), "recall_at_5": float(found.any(axis=1).mean())}
    kinds_arr = np.asarray(kinds)
    out["recall_at_1_by_edit"] = {k: round(float(found[kinds_arr == k, 0].mean()), 4) for k in dict.fromkeys(kinds)}
    return out
