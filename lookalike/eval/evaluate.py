"""Evaluate retrieval approaches on a gallery where every item is also a query.

Search goes through the project's real code: a :class:`~lookalike.index.faiss_index.FaissIndex`
(exact inner product, saved to disk to measure its size) and, for two-step approaches,
:func:`~lookalike.twostep.classify_then_search` — the path :class:`~lookalike.service.SearchService`
takes. Precision@K comes from those searches; mAP@R (which needs R ≈ class size results per
query) from an exact numpy ranking of the same vectors.

Time per query = embedding p50 (the real embedder, one image at a time, head included) +
search p50 (one query at a time, classifier included). :func:`time_approaches` measures all
approaches together, round-robin, so load from other processes falls on each of them alike.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import KS, drop_self, map_at_r_both, precision_at_k

logger = logging.getLogger(__name__)


@dataclass
class Gallery:
    """The gallery (= the queries): labels, the images (for embedding times) and which items to time."""

    labels: list[str]
    dataset: Any  # LabelledImages, or None when nothing is timed
    timing_rows: np.ndarray
    workdir: Path

    @property
    def ids(self) -> list[str]:
        return [f"{i:06d}" for i in range(len(self.labels))]


@dataclass
class ApproachResult:
    name: str
    title: str
    dim: int
    precision: dict[int, float]  # leave-one-out
    precision_self: dict[int, float]  # include-self
    map_at_r: float
    map_at_r_self: float
    embed_p50_s: float | None
    search_p50_s: float | None
    index_bytes: int
    accuracy: float | None = None
    predicted: list[str] | None = field(default=None, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)
    head: Path | None = None  # the ONNX head of the approach's embedder
    search_one: Any = field(default=None, repr=False)  # row -> None: one real search, for timing

    @property
    def time_per_query_s(self) -> float | None:
        if self.embed_p50_s is None or self.search_p50_s is None:
            return None
        return self.embed_p50_s + self.search_p50_s

    def to_dict(self) -> dict[str, Any]:
        r = lambda v: None if v is None else round(float(v), 6)  # noqa: E731
        return {"name": self.name, "title": self.title, "dim": self.dim,
                "precision_at_k": {str(k): r(v) for k, v in self.precision.items()},
                "precision_at_k_include_self": {str(k): r(v) for k, v in self.precision_self.items()},
                "map_at_r": r(self.map_at_r), "map_at_r_include_self": r(self.map_at_r_self),
                "classifier_accuracy": r(self.accuracy), "embed_p50_s": r(self.embed_p50_s),
                "search_p50_s": r(self.search_p50_s), "time_per_query_s": r(self.time_per_query_s),
                "index_bytes": self.index_bytes, **self.extra}


def p50(samples: list[float]) -> float:
    return float(statistics.median(samples)) if samples else float("nan")


def build_index(path: Path, ids: list[str], vectors: np.ndarray, labels: list[str], model: dict[str, Any]):
    """A saved exact FaissIndex of the gallery and its size on disk in bytes."""
    from ..index.faiss_index import FaissIndex

    index = FaissIndex(path, vectors.shape[1], model=model, hnsw_threshold=0)  # exact: metrics must not vary
    index.add(ids, vectors, [{"label": label} for label in labels])
    index.save()
    size = sum(f.stat().st_size for f in Path(path).iterdir() if f.is_file() and not f.name.startswith("."))
    return index, size


def evaluate_approach(gallery: Gallery, name: str, title: str, vectors: np.ndarray, *,
                      head: Path | None = None, classifier=None, timing: bool = True,
                      ks: tuple[int, ...] = KS) -> ApproachResult:
    """Precision@K, mAP@R (both protocols) and index size of one approach.

    ``vectors`` ``(n, dim) float32`` are the gallery items as the approach embeds them; ``head``
    is the ONNX head the approach's embedder uses, ``classifier`` makes it a two-step search.
    With ``timing`` the result keeps its index so :func:`time_approaches` can time it.
    """
    from ..search.twostep import classify_then_search

    labels, ids = gallery.labels, gallery.ids
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    k_max = max(ks)
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=gallery.workdir))
    index, size = build_index(path, ids, vectors, labels, {"name": title, "dim": int(vectors.shape[1])})

    def search(rows: np.ndarray, k: int):
        if classifier is not None:
            return classify_then_search(classifier, index, vectors[rows], k)
        return None, index.search(vectors[rows], k)

    started = time.perf_counter()
    predicted, hits = search(np.arange(len(ids)), k_max + 1)
    label_of = dict(zip(ids, labels))
    ranked_ids = [[h.id for h in row] for row in hits]
    loo = [[label_of[i] for i in row][:k_max] for row in drop_self(ranked_ids, ids)]
    with_self = [[label_of[i] for i in row][:k_max] for row in ranked_ids]
    groups = None
    if predicted is not None:
        classes = {c: n for n, c in enumerate(sorted(set(labels) | set(predicted.tolist())))}
        groups = (np.asarray([classes[c] for c in predicted]), np.asarray([classes[c] for c in labels]))
    map_loo, map_self = map_at_r_both(vectors, labels, groups=groups)
    logger.info("%s: %d queries searched and ranked in %.1fs", name, len(ids), time.perf_counter() - started)

    accuracy = None if predicted is None else float(np.mean(np.asarray(predicted) == np.asarray(labels)))
    result = ApproachResult(name, title, int(vectors.shape[1]), precision_at_k(loo, labels, ks),
                            precision_at_k(with_self, labels, ks), map_loo, map_self, None, None, size,
                            accuracy, None if predicted is None else [str(p) for p in predicted], head=head)
    if timing:
        result.search_one = lambda row: search(np.asarray([row]), k_max)
    return result


def time_approaches(gallery: Gallery, results: list[ApproachResult], make_embedder, n_images: int) -> None:
    """Set ``embed_p50_s`` and ``search_p50_s`` of each result, timing all of them round-robin.

    Embedding: ``n_images`` gallery images, one at a time, through ``make_embedder(head)`` (the real
    embedder, backbone + head). Search: one query at a time for each of ``gallery.timing_rows``
    (FaissIndex runs single queries on one OpenMP thread, as in the API).
    """
    results = [r for r in results if r.search_one is not None]
    heads = {str(r.head) if r.head else None: r.head for r in results}
    embedders = {key: make_embedder(head) for key, head in heads.items()}
    images = [gallery.dataset.image(int(i)) for i in gallery.timing_rows[:n_images]]
    embed: dict[str | None, list[float]] = {key: [] for key in embedders}
    for embedder in embedders.values():
        embedder.encode(images[:1])  # warm-up: the first run allocates
    keys = list(embedders)
    rng = np.random.default_rng(0)
    for image in images:
        for n in rng.permutation(len(keys)):  # a fresh order each round: no embedder always runs first
            t = time.perf_counter()
            embedders[keys[n]].encode([image])
            embed[keys[n]].append(time.perf_counter() - t)
    search: dict[str, list[float]] = {r.name: [] for r in results}
    for r in results:
        r.search_one(int(gallery.timing_rows[0]))
    for row in gallery.timing_rows:
        for n in rng.permutation(len(results)):
            t = time.perf_counter()
            results[n].search_one(int(row))
            search[results[n].name].append(time.perf_counter() - t)
    for r in results:
        r.embed_p50_s = p50(embed[str(r.head) if r.head else None])
        r.search_p50_s = p50(search[r.name])
        r.search_one = None  # frees the index
