"""The index protocol: string ids, unit vectors (inner product = cosine), JSON metadata.

Every backend (FAISS on disk, OpenSearch k-NN) implements :class:`Index` and passes the one
shared test suite in ``tests/index/test_index_contract.py``.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # numpy stays out of the import path: the Lambda package ships without it
    import numpy as np

METADATA_FIELDS = ("path", "label", "sha256")


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Index(Protocol):
    dim: int

    def __len__(self) -> int: ...

    def __contains__(self, id: object) -> bool: ...

    def add(self, ids: Sequence[str], vectors: np.ndarray, metadata: Sequence[Mapping[str, Any]]) -> None:
        """Insert or replace ``len(ids)`` entries; ``vectors`` is ``(n, dim) float32``."""
        ...

    def delete(self, ids: Iterable[str]) -> int:
        """Remove entries by id; unknown ids are ignored. Returns how many were removed."""
        ...

    def search(self, vectors: np.ndarray, k: int, filter: Mapping[str, Any] | None = None) -> list[list[Hit]]:
        """For each query row of ``(q, dim) float32``, up to ``k`` hits by descending score.

        ``filter`` maps a metadata field to a value or a list of accepted values
        (e.g. ``{"label": "birds"}``); only matching entries are returned.
        """
        ...

    def get(self, id: str) -> dict[str, Any] | None:
        """The metadata of ``id``, or None."""
        ...

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """All ``(id, metadata)`` pairs."""
        ...

    def get_vectors(self, ids: Sequence[str]) -> np.ndarray:
        """The stored ``(len(ids), dim) float32`` vectors of ``ids`` (KeyError for unknown ids).

        They are what the backend stores, which may be an approximation of what was added: the
        FAISS index keeps one copy of each vector, in its structure's codes — exact for the flat
        structure and HNSW over float codes, rounded to float16 for ``fp16`` (~1e-3 per component),
        decoded from 8-bit (``sq8``, ~1e-2) or 4-bit PQ codes (``ivfpq``, coarse) and re-normalised
        to unit length for those two. Callers that re-add them (a refit) re-quantize them.
        """
        ...

    def save(self) -> None:
        """Make all changes durable (atomically for file-backed indexes)."""
        ...


def matches(metadata: Mapping[str, Any], filter: Mapping[str, Any] | None) -> bool:
    """True when every filter field equals (or is one of) the metadata's value."""
    if not filter:
        return True
    for key, wanted in filter.items():
        value = metadata.get(key)
        if isinstance(wanted, (list, tuple, set, frozenset)):
            if value not in wanted:
                return False
        elif value != wanted:
            return False
    return True


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:  # numpy ints are Integral
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)
