"""Embedded index on FAISS, stored in a folder.

The FAISS structure is the one store of the vectors, in memory and on disk; which structure
(exact flat, HNSW over SQ8/fp16/float codes, IVF over fp16 codes, IVF-PQ) follows the collection's size, see
:mod:`lookalike.index.structures`. Ids and metadata are a list per FAISS position beside it.

Adds go into the structure as they come (an HNSW graph grows; it is never rebuilt by an add).
Deletes leave *tombstones*: the position stays in the structure, is excluded from every search
by an IDSelector and is never returned. When tombstones pass ``compact_fraction`` of the
positions (default 0.2) the structure is rebuilt from the live vectors: below that they cost at
most 25% more memory and graph traversal, and rebuilding after every ~n/5 deletes keeps the
rebuild's cost per delete constant. Replacing an entry (add with an existing id) is a delete and
an add, so replacing (nearly) everything — a refit — rebuilds once from the new vectors.

How the files are saved crash-safely is :mod:`lookalike.index.faiss_store`'s concern.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..embedders.base import check_vectors
from ..errors import ConfigError
from . import faiss_store as store
from . import structures
from .base import Hit, check_k, matches
from .faiss_params import DEFAULTS
from .faiss_store import FORMAT, MANIFEST  # noqa: F401  (re-exported: where callers look for them)
from .structures import omp_threads

logger = logging.getLogger(__name__)

# Below this many matching entries a filtered search is an exact scan of just those rows:
# faster than a selector over HNSW and never returns fewer than k hits.
EXACT_FILTER_LIMIT = 20_000
CHUNK = 50_000  # vectors reconstructed at a time when rebuilding: 256 MB at 1280-d


def _faiss():
    import faiss

    return faiss


class FaissIndex:
    """FAISS-backed :class:`~lookalike.index.base.Index` persisted in ``path``."""

    def __init__(self, path: Path | None, dim: int, *, model: Mapping[str, Any] | None = None, **params: Any):
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        unknown = set(params) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown FaissIndex parameters: {', '.join(sorted(unknown))}")
        self.path = Path(path) if path is not None else None
        self.dim = int(dim)
        self.model = dict(model or {})
        self.params = {**DEFAULTS, **{k: v for k, v in params.items() if v is not None}}
        if self.params["hnsw_storage"] not in structures.STORAGES:
            raise ConfigError(f"hnsw_storage must be one of {', '.join(structures.STORAGES)}, "
                              f"got {self.params['hnsw_storage']!r}")
        self._ids: list[str | None] = []  # per FAISS position; None = tombstone
        self._meta: list[dict[str, Any] | None] = []
        self._row: dict[str, int] = {}
        self._structure = structures.make("flat", self.dim, self.params)
        self._live_selector = None  # cached IDSelector of the live positions (None: none deleted)
        self._lock = threading.RLock()
        self.readonly = False  # memory-mapped: FAISS cannot grow a mapped structure
        self._mapped: Path | None = None  # the file a read-only index maps
        self.generation = 0

    def __getattr__(self, name: str) -> Any:  # m, ef_search, ... read as attributes, as before
        params = self.__dict__.get("params", {})
        if name in params:
            return params[name]
        raise AttributeError(name)

    # ----- persistence -------------------------------------------------------------------
    @classmethod
    def exists(cls, path: Path) -> bool:
        return (Path(path) / MANIFEST).is_file()

    @classmethod
    def load(cls, path: Path, *, mmap: bool = False, **params: Any) -> FaissIndex:
        """Open the index saved in ``path``; ``params`` override stored parameters.

        With ``mmap`` the structure's codes are memory-mapped (shared page cache, no copy in
        RAM, loads in milliseconds) and the index is read-only: for searching processes.
        """
        path = Path(path)
        manifest, saved, records = store.read_index(path, mmap=mmap)
        stored = dict(manifest["params"])
        if manifest["format"] != FORMAT:
            # Format /1 above the threshold is an HNSW over float vectors: keep it (same results).
            stored.setdefault("hnsw_storage", "flat" if manifest["files"].get("hnsw") else DEFAULTS["hnsw_storage"])
            stored.setdefault("ivfpq_threshold", 0)
        stored.setdefault("ivf_threshold", 0)  # saved before fp16 IVF existed: keep the structures it grew
        stored.update({k: v for k, v in params.items() if v is not None})
        index = cls(path, manifest["dim"], model=manifest.get("model"), **stored)
        index._ids = [None if r is None else r["id"] for r in records]
        index._meta = [None if r is None else {k: v for k, v in r.items() if k != "id"} for r in records]
        index._row = {id_: i for i, id_ in enumerate(index._ids) if id_ is not None}
        index.generation = manifest["generation"]
        if manifest["format"] == FORMAT:
            index._structure = saved
            structures.after_load(saved)
            index.readonly = mmap
            index._mapped = path / manifest["files"]["index"] if mmap else None
        else:
            from .faiss_format1 import structure_from_format1

            index._structure = structure_from_format1(path, manifest, saved, index.params)
        return index

    def save(self) -> None:
        """Write a new generation atomically (see :mod:`lookalike.index.faiss_store`)."""
        if self.path is None:
            raise ConfigError("this index has no path; pass one to save it")
        self._writable()
        with self._lock:
            records = [None if i is None else {"id": i, **m} for i, m in zip(self._ids, self._meta)]
            header = {"dim": self.dim, "count": len(self._row), "model": self.model, "params": self.params,
                      "structure": structures.describe(self._structure)}
            self.generation = store.save_generation(self.path, self.generation, structure=self._structure,
                                                    records=records, header=header)
        logger.info("saved %d entries to %s (generation %d)", len(self), self.path, self.generation)

    def warm(self) -> int:
        """Fault a mapped index's pages in now, not in its first searches; the bytes (0: held in memory)."""
        if self._mapped is None:
            return 0
        from ..memory import populate

        return populate(self._mapped)

    def stored_generation(self) -> int:
        """The generation currently on disk (to notice that another process saved)."""
        return store.read_generation(self.path) if self.path is not None else 0

    # ----- protocol ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, id: object) -> bool:
        return id in self._row

    def add(self, ids: Sequence[str], vectors, metadata: Sequence[Mapping[str, Any]]) -> None:
        vectors = check_vectors(vectors, self.dim)
        if not (len(ids) == len(vectors) == len(metadata)):
            raise ValueError(f"add: got {len(ids)} ids, {len(vectors)} vectors, {len(metadata)} metadata records")
        if len(set(ids)) != len(ids):
            raise ValueError("add: ids must be unique within one call")
        for id_ in ids:
            if not isinstance(id_, str) or not id_:
                raise ValueError(f"add: ids must be non-empty strings, got {id_!r}")
        self._writable()
        with self._lock:
            self._tombstone([i for i in ids if i in self._row])
            kind = structures.choose(len(self._row) + len(vectors), self.params)
            if kind != structures.describe(self._structure)["kind"] or self._worth_compacting():
                self._rebuild(kind, extra=vectors)  # crossed a threshold, or most rows are replaced
            else:
                self._structure.add(vectors)
            start = len(self._ids)
            self._ids.extend(ids)
            self._meta.extend(dict(m) for m in metadata)
            self._row.update((id_, start + n) for n, id_ in enumerate(ids))
            self._live_selector = None

    def delete(self, ids: Iterable[str]) -> int:
        self._writable()
        with self._lock:
            removed = self._tombstone({i for i in ids if i in self._row})
            if removed and self._worth_compacting():
                self._rebuild(structures.choose(len(self._row), self.params))
        return removed

    def get(self, id: str) -> dict[str, Any] | None:
        row = self._row.get(id)
        return None if row is None else dict(self._meta[row])

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for id_, meta in zip(list(self._ids), list(self._meta)):
            if id_ is not None:
                yield id_, dict(meta)

    def get_vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The vectors as the structure stores them (see :meth:`Index.get_vectors`: exact for float
        codes, approximate for fp16/SQ8/PQ). Decoded in chunks, so all ids at once is fine."""
        rows = np.fromiter((self._row[i] for i in ids), dtype=np.int64, count=len(ids))
        structure = self._structure
        return np.concatenate([structures.reconstruct(structure, rows[s:s + CHUNK])
                               for s in range(0, len(rows), CHUNK)] or [np.zeros((0, self.dim), np.float32)])

    def replace_all_vectors(self, ids: Sequence[str], vectors) -> None:
        """Give every entry a new vector (a refit of the post-processing): one rebuild, metadata kept.

        ``ids`` must be exactly the index's ids; the structure is rebuilt (and SQ8/PQ retrained)
        from ``vectors`` alone, never tombstoning the old ones.
        """
        vectors = check_vectors(vectors, self.dim)
        if len(ids) != len(vectors) or set(ids) != set(self._row) or len(set(ids)) != len(ids):
            raise ValueError("replace_all_vectors: ids must be every id of the index, once each")
        self._writable()
        with self._lock:
            meta = [self._meta[self._row[i]] for i in ids]
            self._ids, self._meta, self._row = [], [], {}
            self._rebuild(structures.choose(len(ids), self.params), extra=vectors)
            self._ids, self._meta = list(ids), meta
            self._row = {id_: n for n, id_ in enumerate(ids)}
            self._live_selector = None

    def search(self, vectors, k: int, filter: Mapping[str, Any] | None = None) -> list[list[Hit]]:
        queries = check_vectors(vectors, self.dim, "queries")
        k = check_k(k)
        if not self._row:
            return [[] for _ in range(len(queries))]
        structure, ids = self._structure, self._ids
        faiss = _faiss()
        if filter:
            rows = np.fromiter((i for i, m in enumerate(self._meta) if m is not None and matches(m, filter)),
                               dtype=np.int64)
            if len(rows) == 0:
                return [[] for _ in range(len(queries))]
            selector, few = faiss.IDSelectorBatch(rows), len(rows) <= EXACT_FILTER_LIMIT
            target = structures.exact_part(structure) if few else structure
            k = min(k, len(rows))
        else:
            selector, few, target = self._live(), False, structure
            k = min(k, len(self._row))
        params = structures.search_params(target, ef_search=self.params["ef_search"], k=k, selector=selector,
                                          nprobe=structures.nprobe_for(structure, self.params), exhaustive=few)
        if len(queries) > 1:
            scores, labels = target.search(queries, k, params=params)
        else:
            # FAISS parallelises over queries: for one query, extra OpenMP threads only add wake-up
            # latency and compete with the model's threads (measured: +8 ms per request in the API).
            with omp_threads(1):
                scores, labels = target.search(queries, k, params=params)
        return [[Hit(ids[r], float(s), dict(self._meta[r])) for s, r in zip(srow, lrow) if r >= 0 and ids[r]]
                for srow, lrow in zip(scores, labels)]

    # ----- internals ---------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        described = structures.describe(self._structure)
        return {"backend": "faiss", "count": len(self), "dim": self.dim, "model": self.model,
                "structure": described["kind"], "storage": described["storage"], "path": str(self.path),
                "deleted": len(self._ids) - len(self._row), "bytes": structures.code_bytes(self._structure),
                "mmap": self.readonly, "search": structures.breadth(
                    self._structure, ef_search=self.params["ef_search"],
                    nprobe=structures.nprobe_for(self._structure, self.params))}

    def _writable(self) -> None:
        if self.readonly:
            raise ConfigError(f"the index in {self.path} is open memory-mapped for searching; "
                              "open it without mmap to change it")

    def _tombstone(self, ids: Iterable[str]) -> int:
        removed = 0
        for id_ in ids:
            row = self._row.pop(id_)
            self._ids[row] = self._meta[row] = None
            removed += 1
        if removed:
            self._live_selector = None
        return removed

    def _worth_compacting(self) -> bool:
        dead = len(self._ids) - len(self._row)
        return dead > 0 and dead > self.params["compact_fraction"] * len(self._ids)

    def _live(self):
        """An IDSelector of the live positions, None when nothing is deleted."""
        if len(self._row) == len(self._ids):
            return None
        if self._live_selector is None:
            live = np.fromiter((i is not None for i in self._ids), dtype=bool, count=len(self._ids))
            bits = np.packbits(live, bitorder="little")
            selector = _faiss().IDSelectorBitmap(len(live), _faiss().swig_ptr(bits))
            selector.bits_ref = bits  # the selector points into this array: keep it alive
            self._live_selector = selector
        return self._live_selector

    def _rebuild(self, kind: str, extra: np.ndarray | None = None) -> None:
        """A new structure of ``kind`` over the live vectors (then ``extra``), positions renumbered."""
        old, live = self._structure, np.array([r for r in range(len(self._ids)) if self._ids[r] is not None],
                                              dtype=np.int64)
        extra = np.zeros((0, self.dim), np.float32) if extra is None else extra
        picked = structures.sample_positions(len(live) + len(extra),
                                             structures.train_size(kind, len(live) + len(extra)))
        in_old = picked[picked < len(live)]
        sample = np.concatenate([structures.reconstruct(old, live[in_old]), extra[picked[len(in_old):] - len(live)]])
        logger.info("rebuilding the index as %s over %d vectors (%d deleted)", kind, len(live) + len(extra),
                    len(self._ids) - len(live))
        structure = structures.make(kind, self.dim, self.params, sample, len(live) + len(extra))
        del sample
        for start in range(0, len(live), CHUNK):
            structure.add(structures.reconstruct(old, live[start:start + CHUNK]))
        if len(extra):
            structure.add(extra)
        structures.after_load(structure)
        self._ids = [self._ids[r] for r in live]
        self._meta = [self._meta[r] for r in live]
        self._row = {id_: n for n, id_ in enumerate(self._ids)}
        self._structure, self._live_selector = structure, None
