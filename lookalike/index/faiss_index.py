"""Embedded index on FAISS, stored in a folder.

The vectors (``.npy``) and metadata (``.json``) are the source of truth; the FAISS structure
is derived from them: exact inner product (``IndexFlatIP``) below ``hnsw_threshold`` entries,
``IndexHNSWFlat`` above it (saved too, so loading does not rebuild it). How the files are
saved crash-safely is :mod:`lookalike.index.faiss_store`'s concern.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..embedders.base import check_vectors
from ..errors import ConfigError
from . import faiss_store as store
from .base import Hit, check_k, matches
from .faiss_store import FORMAT, MANIFEST  # noqa: F401  (re-exported: where callers look for them)

logger = logging.getLogger(__name__)

# Below this many matching entries a filtered search is an exact scan of just those rows:
# faster than a selector over HNSW and never returns fewer than k hits.
EXACT_FILTER_LIMIT = 20_000


def _faiss():
    import faiss

    return faiss


@contextmanager
def omp_threads(n: int) -> Iterator[None]:
    """Run FAISS with ``n`` OpenMP threads in the calling thread, then restore its setting.

    OpenMP keeps the thread count per OS thread: setting it once at start-up does not reach
    the worker threads a server searches from.
    """
    faiss = _faiss()
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class FaissIndex:
    """FAISS-backed :class:`~lookalike.index.base.Index` persisted in ``path``."""

    def __init__(self, path: Path | None, dim: int, *, model: Mapping[str, Any] | None = None,
                 hnsw_threshold: int = 10_000, m: int = 32, ef_construction: int = 200, ef_search: int = 128):
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.path = Path(path) if path is not None else None
        self.dim = int(dim)
        self.model = dict(model or {})
        self.hnsw_threshold = hnsw_threshold
        self.m, self.ef_construction, self.ef_search = m, ef_construction, ef_search
        self._ids: list[str] = []
        self._meta: list[dict[str, Any]] = []
        self._row: dict[str, int] = {}
        self._vectors = np.zeros((0, self.dim), dtype=np.float32)
        self._pending: list[np.ndarray] = []
        self._faiss = None  # derived structure; None = rebuild on next use
        self._lock = threading.RLock()  # concurrent searches may race to build the structure
        self.generation = 0

    # ----- persistence -------------------------------------------------------------------
    @classmethod
    def exists(cls, path: Path) -> bool:
        return (Path(path) / MANIFEST).is_file()

    @classmethod
    def load(cls, path: Path, **params: Any) -> FaissIndex:
        """Open the index saved in ``path``; ``params`` override stored HNSW parameters."""
        path = Path(path)
        manifest, vectors, records = store.read_index(path)
        stored = manifest["params"]
        stored.update({k: v for k, v in params.items() if v is not None})
        index = cls(path, manifest["dim"], model=manifest.get("model"), **stored)
        index._ids = [m["id"] for m in records]
        index._meta = [{k: v for k, v in m.items() if k != "id"} for m in records]
        index._row = {id_: i for i, id_ in enumerate(index._ids)}
        index._vectors = vectors
        index.generation = manifest["generation"]
        hnsw = manifest["files"].get("hnsw")
        if hnsw and index._use_hnsw():
            index._faiss = store.read_structure(path / hnsw)
        return index

    def save(self) -> None:
        """Write a new generation atomically (see :mod:`lookalike.index.faiss_store`)."""
        if self.path is None:
            raise ConfigError("this index has no path; pass one to save it")
        self._flush()
        records = [{"id": i, **m} for i, m in zip(self._ids, self._meta)]
        hnsw = (lambda: _faiss().serialize_index(self._structure()).tobytes()) if self._use_hnsw() else None
        header = {"dim": self.dim, "count": len(self._ids), "model": self.model,
                  "params": {"hnsw_threshold": self.hnsw_threshold, "m": self.m,
                             "ef_construction": self.ef_construction, "ef_search": self.ef_search}}
        self.generation = store.save_generation(self.path, self.generation, vectors=self._vectors, records=records,
                                                hnsw=hnsw, header=header)
        logger.info("saved %d entries to %s (generation %d)", len(self), self.path, self.generation)

    def stored_generation(self) -> int:
        """The generation currently on disk (to notice that another process saved)."""
        return store.read_generation(self.path) if self.path is not None else 0

    # ----- protocol ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, id: object) -> bool:
        return id in self._row

    def add(self, ids: Sequence[str], vectors, metadata: Sequence[Mapping[str, Any]]) -> None:
        vectors = check_vectors(vectors, self.dim)
        if not (len(ids) == len(vectors) == len(metadata)):
            raise ValueError(f"add: got {len(ids)} ids, {len(vectors)} vectors, {len(metadata)} metadata records")
        if len(set(ids)) != len(ids):
            raise ValueError("add: ids must be unique within one call")
        replaced = [i for i in ids if i in self._row]
        if replaced:
            self.delete(replaced)
        start = len(self._ids)
        for offset, (id_, meta) in enumerate(zip(ids, metadata)):
            if not isinstance(id_, str) or not id_:
                raise ValueError(f"add: ids must be non-empty strings, got {id_!r}")
            self._ids.append(id_)
            self._meta.append(dict(meta))
            self._row[id_] = start + offset
        self._pending.append(vectors)
        if self._faiss is not None:
            if self._use_hnsw() != self._is_hnsw(self._faiss):
                self._faiss = None  # crossed the threshold: rebuild as the other kind
            else:
                self._faiss.add(vectors)

    def delete(self, ids: Iterable[str]) -> int:
        rows = sorted({self._row[i] for i in ids if i in self._row})
        if not rows:
            return 0
        self._flush()
        keep = np.ones(len(self._ids), dtype=bool)
        keep[rows] = False
        self._vectors = np.ascontiguousarray(self._vectors[keep])
        self._ids = [i for i, k in zip(self._ids, keep) if k]
        self._meta = [m for m, k in zip(self._meta, keep) if k]
        self._row = {id_: n for n, id_ in enumerate(self._ids)}
        self._faiss = None
        return len(rows)

    def get(self, id: str) -> dict[str, Any] | None:
        row = self._row.get(id)
        return None if row is None else dict(self._meta[row])

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for id_, meta in zip(list(self._ids), list(self._meta)):
            yield id_, dict(meta)

    def get_vectors(self, ids: Sequence[str]) -> np.ndarray:
        self._flush()
        rows = [self._row[i] for i in ids]
        return self._vectors[rows].copy() if rows else np.zeros((0, self.dim), np.float32)

    def search(self, vectors, k: int, filter: Mapping[str, Any] | None = None) -> list[list[Hit]]:
        queries = check_vectors(vectors, self.dim, "queries")
        k = check_k(k)
        if not self._ids:
            return [[] for _ in range(len(queries))]
        self._flush()
        if filter:
            rows = np.fromiter((i for i, m in enumerate(self._meta) if matches(m, filter)), dtype=np.int64)
            if len(rows) == 0:
                return [[] for _ in range(len(queries))]
            if len(rows) <= EXACT_FILTER_LIMIT:
                return self._exact(queries, k, rows)
            scores, labels = self._faiss_search(queries, k, rows)
        else:
            scores, labels = self._faiss_search(queries, k, None)
        return [[self._hit(int(r), float(s)) for s, r in zip(srow, lrow) if r >= 0]
                for srow, lrow in zip(scores, labels)]

    # ----- internals ---------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {"backend": "faiss", "count": len(self), "dim": self.dim, "model": self.model,
                "structure": "hnsw" if self._use_hnsw() else "flat", "path": str(self.path)}

    def _hit(self, row: int, score: float) -> Hit:
        return Hit(self._ids[row], score, dict(self._meta[row]))

    def _exact(self, queries: np.ndarray, k: int, rows: np.ndarray) -> list[list[Hit]]:
        scores = queries @ self._vectors[rows].T
        k = min(k, len(rows))
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        out = []
        for q in range(len(queries)):
            order = top[q][np.argsort(-scores[q, top[q]], kind="stable")]
            out.append([self._hit(int(rows[j]), float(scores[q, j])) for j in order])
        return out

    def _faiss_search(self, queries: np.ndarray, k: int, rows: np.ndarray | None):
        faiss = _faiss()
        structure = self._structure()
        k = min(k, len(self._ids))
        if self._is_hnsw(structure):
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(self.ef_search, k)
        else:
            params = faiss.SearchParameters()
        if rows is not None:
            selector = faiss.IDSelectorBatch(rows)
            params.sel = selector
        if len(queries) > 1:
            return structure.search(queries, k, params=params)
        # FAISS parallelises over queries: for one query, extra OpenMP threads only add wake-up
        # latency and compete with the model's threads (measured: +8 ms per request in the API).
        with omp_threads(1):
            return structure.search(queries, k, params=params)

    def _use_hnsw(self) -> bool:
        return len(self._ids) >= self.hnsw_threshold > 0

    @staticmethod
    def _is_hnsw(structure) -> bool:
        return hasattr(structure, "hnsw")

    def _flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self._pending:
            self._vectors = np.concatenate([self._vectors, *self._pending])
            self._pending = []

    def _structure(self):
        with self._lock:
            return self._build_structure()

    def _build_structure(self):
        if self._faiss is None:
            self._flush()
            faiss = _faiss()
            if self._use_hnsw():
                structure = faiss.IndexHNSWFlat(self.dim, self.m, faiss.METRIC_INNER_PRODUCT)
                structure.hnsw.efConstruction = self.ef_construction
                logger.info("building HNSW over %d vectors (m=%d, ef_construction=%d)",
                            len(self._vectors), self.m, self.ef_construction)
            else:
                structure = faiss.IndexFlatIP(self.dim)
            structure.add(self._vectors)
            self._faiss = structure
        return self._faiss
