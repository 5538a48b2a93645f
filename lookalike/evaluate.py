"""Evaluate one retrieval approach on a gallery where every item is also a query.

Search goes through the project's real code: a :class:`~lookalike.index.faiss_index.FaissIndex`
(exact inner product, saved to disk to measure its size) and, for two-step approaches,
:func:`~lookalike.twostep.classify_then_search` — the path :class:`~lookalike.service.SearchService`
takes. Precision@K comes from those searches; mAP@R (which needs R ≈ class size results per
query) from an exact numpy ranking of the same vectors.

Time per query = embedding p50 (the real embedder, one image at a time, head included) +
search p50 (one query at a time, classifier included).
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
    """Vectors of the gallery (= the queries) and what timing needs: images and the embedder."""

    labels: list[str]
    dataset: Any  # LabelledImages, for embedding-time samples
    timing_rows: np.ndarray  # which items to time
    workdir: Path
    embed_time: Any  # callable(head_path | None) -> p50 seconds, memoised

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


def embed_timer(dataset, rows: np.ndarray, make_embedder, repeats: int = 1):
    """``time(head_path) -> p50 seconds`` to embed one image with the real embedder, memoised."""
    memo: dict[str | None, float] = {}

    def time_it(head: Path | None) -> float:
        key = str(head) if head else None
        if key not in memo:
            embedder = make_embedder(head)
            images = [dataset.image(int(i)) for i in rows]
            embedder.encode(images[:1])  # warm-up: first run allocates
            samples = []
            for image in images:
                for _ in range(repeats):
                    t = time.perf_counter()
                    embedder.encode([image])
                    samples.append(time.perf_counter() - t)
            memo[key] = p50(samples)
        return memo[key]

    return time_it


def build_index(path: Path, ids: list[str], vectors: np.ndarray, labels: list[str], model: dict[str, Any]):
    """A saved exact FaissIndex of the gallery and its size on disk in bytes."""
    from .index.faiss_index import FaissIndex

    index = FaissIndex(path, vectors.shape[1], model=model, hnsw_threshold=0)  # exact: metrics must not vary
    index.add(ids, vectors, [{"label": label} for label in labels])
    index.save()
    size = sum(f.stat().st_size for f in Path(path).iterdir() if f.is_file() and not f.name.startswith("."))
    return index, size


def evaluate_approach(gallery: Gallery, name: str, title: str, vectors: np.ndarray, *,
                      head: Path | None = None, classifier=None, timing: bool = True,
                      ks: tuple[int, ...] = KS) -> ApproachResult:
    """Precision@K, mAP@R (both protocols), time per query and index size of one approach.

    ``vectors`` ``(n, dim) float32`` are the gallery items as the approach embeds them; ``head``
    is the ONNX head the approach's embedder uses, ``classifier`` makes it a two-step search.
    """
    from .twostep import classify_then_search

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

    search_p50 = embed_p50 = None
    if timing:
        samples = []
        for row in gallery.timing_rows:
            t = time.perf_counter()
            search(np.asarray([row]), k_max)
            samples.append(time.perf_counter() - t)
        search_p50 = p50(samples)
        embed_p50 = gallery.embed_time(head)
    accuracy = None if predicted is None else float(np.mean(np.asarray(predicted) == np.asarray(labels)))
    return ApproachResult(name, title, int(vectors.shape[1]), precision_at_k(loo, labels, ks),
                          precision_at_k(with_self, labels, ks), map_loo, map_self, embed_p50, search_p50, size,
                          accuracy, None if predicted is None else [str(p) for p in predicted])
