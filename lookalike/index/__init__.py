"""Index backends behind one protocol, and a factory that opens the configured one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import Hit, Index, matches

__all__ = ["Hit", "Index", "matches", "open_index", "BACKENDS"]

BACKENDS = ("faiss", "opensearch")


def open_index(backend: str = "faiss", *, settings, dim: int | None = None, model: dict[str, Any] | None = None,
               create: bool = False, path: Path | None = None) -> Index:
    """Open the index named by ``backend``; with ``create`` a missing one is made with ``dim``."""
    if backend == "faiss":
        from .faiss_index import FaissIndex
        from .faiss_params import params_from, search_params_from

        path = Path(path or settings.index_dir)
        params = params_from(settings)
        if FaissIndex.exists(path):  # the structure's parameters are the index's own; search breadth is not
            return FaissIndex.load(path, **search_params_from(settings))
        if not create:
            return FaissIndex.load(path)  # raises a clear "no index" error
        if dim is None:
            raise ConfigError("creating an index needs the embedding dimension")
        return FaissIndex(path, dim, model=model, **params)
    if backend == "opensearch":
        from .opensearch import OpenSearchIndex  # cloud extra: opensearch-py

        return OpenSearchIndex.from_settings(settings, dim=dim, model=model, create=create)
    raise ConfigError(f"unknown index backend {backend!r}; choose one of {', '.join(BACKENDS)}")
