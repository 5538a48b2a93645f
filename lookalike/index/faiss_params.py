"""The :class:`~lookalike.index.faiss_index.FaissIndex` parameters and the Settings fields they come from."""

from __future__ import annotations

from typing import Any

from ..config import Settings

# Each structure parameter is a Settings field (LOOKALIKE_*, a CLI flag), where its default is defined.
SETTINGS_FIELDS = {"hnsw_threshold": "hnsw_threshold", "m": "hnsw_m", "ef_construction": "hnsw_ef_construction",
                   "ef_search": "hnsw_ef_search", "hnsw_storage": "hnsw_storage", "ivf_threshold": "ivf_threshold",
                   "ivf_nprobe": "ivf_nprobe", "ivfpq_threshold": "ivfpq_threshold", "nprobe": "ivfpq_nprobe",
                   "compact_fraction": "index_compact_fraction"}
DEFAULTS = {param: getattr(Settings, name) for param, name in SETTINGS_FIELDS.items()}
# What a search may choose anew for an index it opens (the rest is the index's own, from its manifest).
SEARCH_PARAMS = ("ef_search", "nprobe", "ivf_nprobe")


def params_from(settings) -> dict[str, Any]:
    """The structure parameters ``settings`` hold, by :class:`FaissIndex`'s names."""
    return {param: getattr(settings, name) for param, name in SETTINGS_FIELDS.items()}


def search_params_from(settings) -> dict[str, Any]:
    """The search-breadth parameters ``settings`` hold: the overrides :meth:`FaissIndex.load` takes."""
    return {param: getattr(settings, SETTINGS_FIELDS[param]) for param in SEARCH_PARAMS}
