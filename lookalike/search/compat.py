"""Which model made an index's vectors, and the check that a query is embedded by the same one."""

from __future__ import annotations

import logging
from typing import Any

from ..errors import ConfigError

logger = logging.getLogger(__name__)

# What a local index's model info without engine/precision means: it was built before they
# existed, when every model ran in ONNX Runtime at fp32 (its fingerprint is the file's digest).
LEGACY_RUN = {"engine": "onnxruntime", "precision": "fp32"}


def stored_run(model: dict | None) -> dict[str, str] | None:
    """``{"engine", "precision"}`` the index's vectors were made with; None when unknown (no model
    info yet, or vectors from an endpoint that did not say, which record no fingerprint either)."""
    model = model or {}
    if model.get("engine") and model.get("precision"):
        return {key: model[key] for key in LEGACY_RUN}
    return dict(LEGACY_RUN) if model.get("fingerprint") else None


def check_compatible(embedder, index) -> None:
    """Refuse to search an index with vectors from another model, engine or precision."""
    if embedder.dim != index.dim:
        raise ConfigError(f"the index holds {index.dim}-d vectors but the embedder {embedder.name!r} makes "
                          f"{embedder.dim}-d ones; use the model the index was built with or re-index")
    stored = getattr(index, "model", {}) or {}
    if stored.get("name") and stored["name"] != embedder.name:
        raise ConfigError(f"the index was built with {stored['name']!r} but the embedder is {embedder.name!r}; "
                          "pass the same --backbone/--model/--head or re-index")
    run = stored_run(stored)
    mine = {key: getattr(embedder, key, None) for key in LEGACY_RUN}
    if run and all(mine.values()) and mine != run:
        # int8, bf16 and fp32 vectors of one image differ (cosine ~0.99): one index never mixes them.
        raise ConfigError(f"the index was built with {run['engine']}/{run['precision']} but the embedder runs "
                          f"{mine['engine']}/{mine['precision']}; leave --engine/--precision unset (or pass "
                          f"--engine {run['engine']} --precision {run['precision']}) or re-index")
    fingerprint = getattr(embedder, "fingerprint", None)
    if stored.get("fingerprint") and fingerprint and stored["fingerprint"] != fingerprint:
        # Same model name, different model bytes (new weights, a changed export), pixels from another
        # Pillow (Pillow-SIMD rounds differently) or scaled elsewhere (OpenVINO's +u8 scales them in
        # its graph; an OpenVINO index made before did so in numpy): vectors may not match exactly.
        logger.warning("the index was built with %s fingerprint %s but this one is %s (another model file, "
                       "Pillow against Pillow-SIMD, or pixels scaled inside OpenVINO: +u8); if results look "
                       "wrong, re-index", embedder.name, stored["fingerprint"], fingerprint)


def model_info(embedder) -> dict[str, Any]:
    """What an index records of the model that makes its vectors."""
    return {"name": embedder.name, "dim": embedder.dim, "fingerprint": getattr(embedder, "fingerprint", None),
            "engine": getattr(embedder, "engine", None), "precision": getattr(embedder, "precision", None)}
