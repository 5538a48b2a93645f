"""Which model made an index's vectors, and the check that a query is embedded by the same one."""

from __future__ import annotations

import logging
from typing import Any

from ..errors import ConfigError

logger = logging.getLogger(__name__)


def check_compatible(embedder, index) -> None:
    """Refuse to search an index with vectors from another model."""
    if embedder.dim != index.dim:
        raise ConfigError(f"the index holds {index.dim}-d vectors but the embedder {embedder.name!r} makes "
                          f"{embedder.dim}-d ones; use the model the index was built with or re-index")
    stored = getattr(index, "model", {}) or {}
    if stored.get("name") and stored["name"] != embedder.name:
        raise ConfigError(f"the index was built with {stored['name']!r} but the embedder is {embedder.name!r}; "
                          "pass the same --backbone/--model/--head or re-index")
    fingerprint = getattr(embedder, "fingerprint", None)
    if stored.get("fingerprint") and fingerprint and stored["fingerprint"] != fingerprint:
        # Same model name, different model bytes (new weights, a changed export): vectors may not match.
        logger.warning("the index was built with %s model file %s but this one is %s; if results look wrong, "
                       "re-index", embedder.name, stored["fingerprint"], fingerprint)


def model_info(embedder) -> dict[str, Any]:
    return {"name": embedder.name, "dim": embedder.dim, "fingerprint": getattr(embedder, "fingerprint", None)}
