"""Exact and near duplicates in a collection.

- **Exact**: several files with the same content. Ids are content hashes, so they share one
  entry; ingest records the other files in its metadata (``copies``).
- **Near**: entries whose cosine similarity is at least ``threshold`` (resized, re-encoded,
  cropped or recoloured copies). Pairs come from an exact k-NN of every vector against the
  whole collection, in blocks (one matrix product per block: a 100,000-image collection is
  about 1.3e13 multiply-adds, minutes on two cores), never from a Python loop over pairs.
  Groups are the connected components of the graph of those pairs (if A~B and B~C, then A, B
  and C are one group, even if A and C are further apart); each member's ``score`` is its
  similarity to the group's first member, the one with the most links (ties: smallest id).

Groups are sorted by size, then by their highest score; exact groups come first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..index.postprocessing import backbone_view
from ..limits import DUPLICATE_THRESHOLD

DEFAULT_THRESHOLD = DUPLICATE_THRESHOLD
BLOCK = 2048


@dataclass
class Group:
    id: str  # "exact:" or "near:" + the id of the group's first member
    kind: str  # "exact" | "near"
    members: list[dict[str, Any]] = field(default_factory=list)  # id, label, path, score (+ url)

    @property
    def size(self) -> int:
        return len(self.members)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "size": self.size, "members": self.members}


def near_pairs(vectors: np.ndarray, threshold: float, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, cols, scores)`` of every pair ``rows < cols`` with ``vectors[r] @ vectors[c] >= threshold``."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    rows, cols, scores = [], [], []
    for start in range(0, len(vectors), block):
        sims = vectors[start:start + block] @ vectors.T
        r, c = np.nonzero(sims >= threshold)
        keep = c > r + start  # each pair once, never an entry with itself
        rows.append(r[keep] + start)
        cols.append(c[keep])
        scores.append(sims[r[keep], c[keep]])
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(scores)


def _components(n: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Union-find over ``n`` nodes → a component label per node."""
    parent = np.arange(n)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(rows.tolist(), cols.tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)])


def find_duplicates(index, threshold: float = DEFAULT_THRESHOLD, *, block: int = BLOCK) -> list[Group]:
    """Every exact and near-duplicate group in ``index`` (any backend with ``items``/``get_vectors``)."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    # The threshold was calibrated on backbone similarities: compare those, not post-processed ones.
    index = backbone_view(index)
    entries = sorted(index.items())
    groups = [Group(f"exact:{id_}", "exact", [_member(id_, meta, meta.get("path"), 1.0)]
                    + [_member(id_, meta, copy, 1.0) for copy in meta.get("copies") or ()])
              for id_, meta in entries if meta.get("copies")]
    if len(entries) > 1:
        ids = [id_ for id_, _ in entries]
        vectors = index.get_vectors(ids)
        rows, cols, _ = near_pairs(vectors, threshold, block)
        labels = _components(len(ids), rows, cols)
        degree = np.bincount(np.concatenate([rows, cols]), minlength=len(ids))
        for label in np.unique(labels[np.concatenate([rows, cols])]) if len(rows) else []:
            members = np.flatnonzero(labels == label)
            head = members[np.lexsort((members, -degree[members]))][0]
            sims = vectors[members] @ vectors[head]
            order = np.lexsort((members, -sims))
            groups.append(Group(f"near:{ids[head]}", "near", [_member(ids[m], entries[m][1], entries[m][1].get("path"),
                                                            float(sims[i])) for i, m in zip(order, members[order])]))
    kind_rank = {"exact": 0, "near": 1}
    groups.sort(key=lambda g: (kind_rank[g.kind], -g.size, -max((m["score"] for m in g.members[1:]), default=1.0),
                               g.id))
    return groups


def _member(id_: str, meta: dict[str, Any], path: str | None, score: float) -> dict[str, Any]:
    return {"id": id_, "label": meta.get("label"), "path": path, "score": round(score, 6)}


def page(groups: list[Group], *, limit: int, after: str | None = None) -> tuple[list[Group], str | None]:
    """One page of ``groups`` continuing after the group whose id is ``after``."""
    start = 0
    if after is not None:
        start = next((i + 1 for i, g in enumerate(groups) if g.id == after), len(groups))
    chunk = groups[start:start + limit]
    return chunk, chunk[-1].id if chunk and start + limit < len(groups) else None
