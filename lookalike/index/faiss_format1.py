"""Reading format ``lookalike-faiss/1``: float32 vectors in ``vectors-N.npy`` (the source of truth
then) and, above the HNSW threshold, the graph in ``hnsw-N.faiss``. Only read, to migrate: the next
save writes format /2 (:mod:`lookalike.index.faiss_store`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import structures

logger = logging.getLogger(__name__)


def read_generation_1(path: Path, manifest: Mapping[str, Any], damaged) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The vectors and records of a /1 generation; ``damaged(path, detail)`` makes its errors."""
    files = manifest["files"]
    try:
        vectors = np.load(path / files["vectors"], allow_pickle=False)
        records = json.loads((path / files["metadata"]).read_bytes())
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise damaged(path, f"a file of generation {manifest['generation']} cannot be read ({exc})") from None
    if vectors.ndim != 2 or vectors.shape[1] != manifest["dim"]:
        raise damaged(path, f"{files['vectors']} holds an array of shape {vectors.shape}, "
                            f"expected (n, {manifest['dim']})")
    if not isinstance(records, list) or not all(isinstance(r, dict) and isinstance(r.get("id"), str)
                                                for r in records):
        raise damaged(path, f"{files['metadata']} is not a list of records with ids")
    if len(records) != len(vectors) or manifest["count"] != len(vectors):
        raise damaged(path, f"the manifest says {manifest['count']} entries, the files hold {len(vectors)} vectors "
                            f"and {len(records)} records")
    if len({r["id"] for r in records}) != len(records):
        raise damaged(path, f"{files['metadata']} holds the same id twice")
    return np.ascontiguousarray(vectors, dtype=np.float32), records


def read_structure(file: Path):
    """The saved HNSW graph, or None (rebuilt from the vectors on first use) when it is unreadable."""
    import faiss

    try:
        return faiss.read_index(str(file))
    except RuntimeError as exc:  # the vectors are the source of truth: the graph can be rebuilt
        logger.warning("cannot read %s (%s); rebuilding the HNSW graph from the vectors", file, exc)
        return None


def structure_from_format1(path: Path, manifest: Mapping[str, Any], vectors: np.ndarray, params: dict[str, Any]):
    """The FAISS structure of a /1 index: its saved HNSW graph (an ``IndexHNSWFlat``, which holds
    the vectors: the ``.npy`` copy is dropped), else one built from the vectors."""
    hnsw = manifest["files"].get("hnsw")
    kind = structures.choose(len(vectors), params)
    if hnsw and kind == "hnsw":
        graph = read_structure(path / hnsw)
        if graph is not None and graph.ntotal == len(vectors):
            return graph
    structure = structures.make(kind, vectors.shape[1], params, vectors, len(vectors))
    structure.add(vectors)
    return structure
