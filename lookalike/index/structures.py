"""Which FAISS structure holds an index's vectors, chosen by size, and how it is made.

The structure is the only copy of the vectors (in memory and on disk):

- ``flat``   below ``hnsw_threshold``: exact inner product over float32 (``IndexFlatIP``).
- ``hnsw``   from ``hnsw_threshold``: an HNSW graph over ``storage`` codes — ``fp16`` (2 bytes a
  dimension, the default: 1M x 1280-d in ~2.7 GB), ``sq8`` (1 byte: half that, but at 1M its
  rounding reorders close neighbours, recall@10 0.85) or ``flat`` (4 bytes). The graph grows with
  every ``add``; it is never rebuilt by an add.
- ``ivf``    from ``ivf_threshold`` (0 = never): inverted lists of fp16 codes under an exact
  centroid search (``IVF<nlist>,SQfp16``, no residuals: the codes are the vectors'). Searching a
  few lists of a million streams their codes, where HNSW waits on one random 2.5 KB code after
  another: at 1M it is the structure that meets recall@10 >= 0.95 within 2 ms (docs/BENCHMARKS.md).
  Adds go into the lists of the nearest trained centroid; nothing is rebuilt.
- ``ivfpq``  from ``ivfpq_threshold`` (0 = never): inverted lists of 4-bit fast-scan PQ codes,
  ``dim / 8`` bytes a vector (160 B at 1280-d, 16x smaller than fp16) for collections HNSW cannot
  hold in RAM, at a large recall cost (~0.7 at recall@10; see docs/BENCHMARKS.md).

Changing kind (crossing a threshold) rebuilds once from the reconstructed vectors; SQ8, IVF and
PQ are trained on a uniform sample of the vectors present then (SQ8 learns each dimension's range:
later values outside it are clipped, which unit vectors of one model rarely are; IVF lists are
sized for twice the count they are trained at, so the lists of a collection that keeps growing
stay short until the next threshold or compaction retrains them).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .breadth import hnsw_ef_search_for

KINDS = ("flat", "hnsw", "ivf", "ivfpq")
STORAGES = ("sq8", "fp16", "flat")
TRAIN_SAMPLE = 100_000  # vectors SQ8 / IVF-PQ are trained on: ranges and centroids settle far earlier
# fp16 IVF: k-means on this many vectors a list (FAISS warns below 39), 10 iterations: 4,096 lists
# train in 82 s on 2 cores; the recall measured at 1M (docs/BENCHMARKS.md) is with these settings.
IVF_TRAIN_PER_LIST, IVF_KMEANS_ITERATIONS = 50, 10
# Each query first scans every centroid exactly (nlist x dim x 4 bytes: 21 MB at 4,096 x 1280-d, ~0.8
# of the Xeon's 1.6 ms at 1M), and more lists at the same nprobe cover less: 4,096 is what was measured
# (at 1M), kept up to the IVF-PQ threshold rather than doubled to 8,192 from 1.05M.
IVF_MAX_LISTS = 4096


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


def choose(count: int, params: dict[str, Any]) -> str:
    """The kind of structure for ``count`` vectors under ``params`` (hnsw_threshold 0: always exact)."""
    if params["hnsw_threshold"] <= 0:
        return "flat"
    if params.get("ivfpq_threshold", 0) and count >= params["ivfpq_threshold"]:
        return "ivfpq"
    if params.get("ivf_threshold", 0) and count >= params["ivf_threshold"]:
        return "ivf"
    if params["hnsw_threshold"] > 0 and count >= params["hnsw_threshold"]:
        return "hnsw"
    return "flat"


def describe(structure) -> dict[str, str]:
    """``{"kind": ..., "storage": ...}`` of a FAISS structure (what the manifest records)."""
    faiss = _faiss()
    if hasattr(structure, "hnsw"):
        storage = faiss.downcast_index(structure.storage)
        if isinstance(storage, faiss.IndexScalarQuantizer):
            qtype = storage.sq.qtype
            return {"kind": "hnsw", "storage": "fp16" if qtype == faiss.ScalarQuantizer.QT_fp16 else "sq8"}
        return {"kind": "hnsw", "storage": "flat"}
    if isinstance(structure, faiss.IndexIVFScalarQuantizer):
        return {"kind": "ivf", "storage": "fp16"}
    if hasattr(structure, "nlist"):
        return {"kind": "ivfpq", "storage": "pq4"}
    return {"kind": "flat", "storage": "flat"}


def nlist_for(count: int) -> int:
    """Inverted lists for ``count`` vectors: a power of two near sqrt(count), >= 39 training points each."""
    lists = 2 ** round(math.log2(max(1.0, math.sqrt(count))))
    return int(max(1, min(lists, count // 39)))


def ivf_nlist_for(count: int) -> int:
    """fp16 IVF lists for ``count`` vectors: a power of two near 4 sqrt(2 count) (FAISS's guideline is
    4-16 sqrt(n)), sized for twice ``count``, with enough training points each, at most IVF_MAX_LISTS."""
    lists = 2 ** round(math.log2(4 * math.sqrt(2 * max(1, count))))
    return int(max(1, min(lists, IVF_MAX_LISTS, count // IVF_TRAIN_PER_LIST)))


def train_size(kind: str, count: int) -> int:
    """How many of ``count`` vectors a new structure of ``kind`` is trained on."""
    if kind == "ivf":
        return min(count, IVF_TRAIN_PER_LIST * ivf_nlist_for(count))
    return min(count, TRAIN_SAMPLE)


def sample_positions(count: int, size: int) -> np.ndarray:
    """``size`` of ``count`` positions, uniformly and reproducibly drawn, in order (reads stay sequential):
    a collection added class by class must not train on its first classes only."""
    if size >= count:
        return np.arange(count, dtype=np.int64)
    return np.sort(np.random.default_rng(0).choice(count, size, replace=False)).astype(np.int64)


def pq_m(dim: int) -> int:
    """PQ sub-quantizers: one 4-bit code per 4 dimensions (the largest divisor of dim up to dim/4)."""
    return next(m for m in range(max(1, dim // 4), 0, -1) if dim % m == 0)


def empty(kind: str, dim: int, params: dict[str, Any], count: int = 0):
    """A new structure of ``kind`` sized for ``count`` vectors, not yet trained (:func:`make` trains it)."""
    faiss = _faiss()
    ip = faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind == "hnsw":
        storage = params.get("hnsw_storage", "sq8")
        if storage not in STORAGES:
            raise ValueError(f"hnsw_storage must be one of {', '.join(STORAGES)}, got {storage!r}")
        if storage == "flat":
            structure = faiss.IndexHNSWFlat(dim, params["m"], ip)
        else:
            qtype = faiss.ScalarQuantizer.QT_8bit if storage == "sq8" else faiss.ScalarQuantizer.QT_fp16
            structure = faiss.IndexHNSWSQ(dim, qtype, params["m"], ip)
        structure.hnsw.efConstruction = params["ef_construction"]
    elif kind == "ivf":
        structure = faiss.index_factory(dim, f"IVF{ivf_nlist_for(count)},SQfp16", ip)
        structure.by_residual = False  # the codes are the vectors: decoding and re-ranking stay exact to fp16
        structure.cp.niter = IVF_KMEANS_ITERATIONS
        structure.cp.max_points_per_centroid = IVF_TRAIN_PER_LIST
    elif kind == "ivfpq":
        structure = faiss.index_factory(dim, f"IVF{nlist_for(count)},PQ{pq_m(dim)}x4fs", ip)
    else:
        raise ValueError(f"unknown structure kind {kind!r}")
    return structure


def make(kind: str, dim: int, params: dict[str, Any], sample: np.ndarray | None = None,
         count: int = 0):
    """An empty, trained structure of ``kind``; ``sample`` trains SQ8 / IVF / IVF-PQ."""
    count = max(count, 0 if sample is None else len(sample))
    structure = empty(kind, dim, params, count)
    if not structure.is_trained:
        if sample is None or not len(sample):
            raise ValueError(f"a {kind} structure needs vectors to train on")
        size = train_size(kind, count)
        if len(sample) > size:  # a caller that sampled already (a rebuild) passes no more than this
            sample = sample[sample_positions(len(sample), size)]
        structure.train(np.ascontiguousarray(sample))
    return structure


def after_load(structure) -> None:
    """Prepare a structure read from disk for lookups by position."""
    if hasattr(structure, "nlist"):
        structure.make_direct_map()  # reconstruct(position) needs it; not serialised


def nprobe_for(structure, params: dict[str, Any]) -> int:
    """The lists an IVF ``structure`` searches under ``params`` (fp16 and PQ codes need different numbers).
    On every search: a type check, not :func:`describe` (which downcasts an HNSW's storage, ~5 us)."""
    return params["ivf_nprobe"] if isinstance(structure, _faiss().IndexIVFScalarQuantizer) else params["nprobe"]


def breadth(structure, *, ef_search: int, nprobe: int) -> dict[str, int]:
    """How wide a search of ``structure`` looks: HNSW candidates, or IVF lists probed of all."""
    if hasattr(structure, "hnsw"):
        return {"ef_search": hnsw_ef_search_for(structure.ntotal, ef_search)}
    if hasattr(structure, "nlist"):
        return {"nprobe": min(nprobe, structure.nlist), "lists": structure.nlist}
    return {}


def search_params(structure, *, ef_search: int, nprobe: int, k: int, selector=None, exhaustive: bool = False):
    """FAISS search parameters for ``structure`` (``exhaustive``: IVF probes every list)."""
    faiss = _faiss()
    wide = breadth(structure, ef_search=ef_search, nprobe=nprobe)
    if hasattr(structure, "hnsw"):
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(wide["ef_search"], k)
    elif hasattr(structure, "nlist"):
        params = faiss.SearchParametersIVF()
        params.nprobe = structure.nlist if exhaustive else wide["nprobe"]
    else:
        params = faiss.SearchParameters()
    if selector is not None:
        params.sel = selector
    return params


def exact_part(structure):
    """What a filtered search over few rows scans exactly: the codes themselves, without the graph."""
    if hasattr(structure, "hnsw"):
        return _faiss().downcast_index(structure.storage)
    return structure


def reconstruct(structure, positions: np.ndarray) -> np.ndarray:
    """The (decoded) vectors at ``positions``; lossy codes are re-normalised to unit length."""
    positions = np.ascontiguousarray(positions, dtype=np.int64)
    if not len(positions):
        return np.zeros((0, structure.d), np.float32)
    vectors = np.asarray(structure.reconstruct_batch(positions), dtype=np.float32)
    if describe(structure)["storage"] in ("sq8", "pq4"):
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors /= np.where(norms > 0, norms, 1.0)
    return vectors


def code_bytes(structure) -> int:
    """Bytes the structure holds for its vectors and graph (the index's memory, bar Python's ids)."""
    faiss = _faiss()
    if hasattr(structure, "hnsw"):
        storage = faiss.downcast_index(structure.storage)
        graph = structure.hnsw.neighbors.size() * 4 + structure.hnsw.levels.size() * 4 \
            + structure.hnsw.offsets.size() * 8
        return int(storage.code_size * storage.ntotal + graph)
    if hasattr(structure, "nlist"):  # codes, an 8-byte id each, the centroids
        return int(structure.code_size * structure.ntotal + structure.ntotal * 8 + structure.nlist * structure.d * 4)
    return int(structure.code_size * structure.ntotal)
