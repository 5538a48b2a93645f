"""Retrieval metrics: precision@K, mAP@R and the two query protocols.

A *hit* is a retrieved item whose label equals the query's label.

*leave-one-out* (the default): the query is in the gallery but is removed from its own
results, so K results are the K nearest OTHER items. *include-self* keeps it, as the
original design did (so P@1 is ~1.0 by construction).

mAP@R (Musgrave et al., "A Metric Learning Reality Check", 2020): for a query with R
relevant gallery items, ``AP@R = (1/R) · Σ_{i≤R} P@i · rel(i)`` over the first R results;
queries with R = 0 are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

KS = (1, 2, 3, 4, 5, 6)


def drop_self(ranked: Sequence[Sequence[str]], query_ids: Sequence[str]) -> list[list[str]]:
    """Remove each query's own id from its ranked list of ids (leave-one-out)."""
    return [[r for r in row if r != q] for row, q in zip(ranked, query_ids)]


def precision_at_k(retrieved_labels: Sequence[Sequence[str]], query_labels: Sequence[str],
                   ks: Sequence[int] = KS) -> dict[int, float]:
    """Mean over queries of (hits among the first K results) / K; fewer than K results count as misses."""
    if len(retrieved_labels) != len(query_labels):
        raise ValueError(f"{len(retrieved_labels)} result lists for {len(query_labels)} queries")
    if not query_labels:
        return {k: float("nan") for k in ks}
    out = {}
    for k in ks:
        hits = [sum(1 for label in row[:k] if label == q) for row, q in zip(retrieved_labels, query_labels)]
        out[k] = float(np.mean(hits) / k)
    return out


def average_precision_at_r(relevant: np.ndarray, r: np.ndarray) -> np.ndarray:
    """AP@R per query: ``relevant`` is ``(n, depth) bool`` (rank order), ``r`` is ``(n,) int``
    relevant counts with ``depth >= max(r)``. Returns ``(n,) float64`` (NaN where R = 0)."""
    relevant = np.asarray(relevant, dtype=bool)
    r = np.asarray(r, dtype=np.int64)
    if relevant.ndim != 2 or len(relevant) != len(r):
        raise ValueError(f"relevant must be (n, depth) with n = len(r); got {relevant.shape} and {r.shape}")
    if len(r) and r.max(initial=0) > relevant.shape[1]:
        raise ValueError(f"depth {relevant.shape[1]} is smaller than the largest R ({r.max()})")
    ranks = np.arange(1, relevant.shape[1] + 1)
    within = ranks[None, :] <= r[:, None]
    rel = relevant & within
    precision = np.cumsum(rel, axis=1) / ranks[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (precision * rel).sum(axis=1) / r
    return np.where(r > 0, ap, np.nan)


def map_at_r(relevant: np.ndarray, r: np.ndarray) -> float:
    ap = average_precision_at_r(relevant, r)
    return float(np.nanmean(ap)) if np.any(~np.isnan(ap)) else float("nan")


def relevant_counts(query_labels: Sequence[str], gallery_labels: Sequence[str], *, self_in_gallery: bool,
                    include_self: bool) -> np.ndarray:
    """R per query: gallery items sharing its label, minus itself under leave-one-out."""
    counts: dict[str, int] = {}
    for label in gallery_labels:
        counts[label] = counts.get(label, 0) + 1
    r = np.asarray([counts.get(q, 0) for q in query_labels], dtype=np.int64)
    if self_in_gallery and not include_self:
        r = r - 1
    return r


def rank_gallery(queries: np.ndarray, gallery: np.ndarray, depth: int, *, self_rows: np.ndarray | None = None,
                 groups: tuple[np.ndarray, np.ndarray] | None = None, chunk: int = 1024) -> np.ndarray:
    """Exact inner-product ranking → ``(q, depth) int64`` gallery rows by descending score, -1 padded.

    ``self_rows[i]`` (or -1) is query i's own gallery row, removed from its ranking (leave-one-out).
    ``groups = (query_groups, gallery_groups)`` restricts each query to the gallery rows of its own
    group (e.g. the class predicted for it, in a two-step search); other rows are never ranked.
    """
    queries = np.asarray(queries, dtype=np.float32)
    gallery = np.asarray(gallery, dtype=np.float32)
    n = len(gallery)
    depth = int(min(depth, n))
    out = np.full((len(queries), depth), -1, dtype=np.int64)
    for start in range(0, len(queries), chunk):
        stop = min(start + chunk, len(queries))
        scores = queries[start:stop] @ gallery.T
        excluded = np.zeros(scores.shape, dtype=bool)
        if groups is not None:
            excluded |= np.asarray(groups[0])[start:stop, None] != np.asarray(groups[1])[None, :]
        if self_rows is not None:
            rows = np.asarray(self_rows[start:stop])
            own = np.flatnonzero(rows >= 0)
            excluded[own, rows[own]] = True
        scores[excluded] = -np.inf
        if depth < n:
            top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
        else:
            top = np.tile(np.arange(n), (stop - start, 1))
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        ranked = np.take_along_axis(top, order, axis=1)
        valid = ~np.take_along_axis(excluded, ranked, axis=1)
        out[start:stop] = np.where(valid, ranked, -1)
    return out


def ranked_relevance(ranked_rows: np.ndarray, query_labels: Sequence[str], gallery_labels: Sequence[str]) -> np.ndarray:
    """``(q, depth) bool``: whether each ranked gallery row (-1 = nothing) shares the query's label."""
    gallery = np.asarray(list(gallery_labels) + [None], dtype=object)  # row -1 → None, never relevant
    labels = gallery[ranked_rows]
    return labels == np.asarray(query_labels, dtype=object)[:, None]


def without_self(ranked_rows: np.ndarray, self_rows: np.ndarray) -> np.ndarray:
    """Drop each query's own row from its ranking (leave-one-out) → ``(q, depth - 1)``."""
    removed = ranked_rows == np.asarray(self_rows)[:, None]
    order = np.argsort(removed, axis=1, kind="stable")  # kept entries first, in rank order
    return np.take_along_axis(ranked_rows, order, axis=1)[:, :-1]


def map_at_r_both(vectors: np.ndarray, labels: Sequence[str], *,
                  groups: tuple[np.ndarray, np.ndarray] | None = None, chunk: int = 1024) -> tuple[float, float]:
    """mAP@R of every item of ``(n, dim)`` vectors as a query against all of them →
    ``(leave-one-out, include-self)``.

    ``groups = (query_groups, gallery_groups)``, both ``(n,)``, restricts each query to the items
    of its group, e.g. the class predicted for it in a two-step search.
    """
    labels = list(labels)
    r_self = relevant_counts(labels, labels, self_in_gallery=True, include_self=True)
    depth = int(r_self.max(initial=1))
    ap_loo, ap_self = [], []
    for start in range(0, len(labels), chunk):
        stop = min(start + chunk, len(labels))
        own = np.arange(start, stop)
        part = None if groups is None else (np.asarray(groups[0])[start:stop], np.asarray(groups[1]))
        ranked = rank_gallery(vectors[start:stop], vectors, depth, groups=part)
        q = labels[start:stop]
        ap_self.append(average_precision_at_r(ranked_relevance(ranked, q, labels), r_self[start:stop]))
        loo = without_self(ranked, own)
        ap_loo.append(average_precision_at_r(ranked_relevance(loo, q, labels), r_self[start:stop] - 1))
    mean = (lambda a: float(np.nanmean(a)) if np.any(~np.isnan(a)) else float("nan"))
    return mean(np.concatenate(ap_loo)), mean(np.concatenate(ap_self))
