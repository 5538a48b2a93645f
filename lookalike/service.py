"""The search service: image bytes → embedding → k-NN → results.

The CLI, the local HTTP API and the Lambda handler are thin edges over :class:`SearchService`;
they differ only in the embedder (local ONNX or a SageMaker endpoint), the index (FAISS or
OpenSearch) and how result URLs are made.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .errors import ConfigError
from .imaging import decode_image
from .schema import Limits, SearchRequest, SearchResponse, SearchResult, parse_search_request

logger = logging.getLogger(__name__)

UrlFor = Callable[[str, dict[str, Any]], str]


def local_url(id: str, metadata: dict[str, Any]) -> str:
    return f"/images/{id}"


class SearchService:
    def __init__(self, embedder, index, *, limits: Limits, url_for: UrlFor = local_url,
                 reload: Callable[[Any], Any] | None = None, reload_interval: float = 2.0, classifier=None):
        check_compatible(embedder, index)
        if classifier is not None:
            classifier.check_compatible(embedder)
        self.embedder = embedder
        self.classifier = classifier  # two-step search: see lookalike.twostep
        self.index = index
        self.limits = limits
        self.url_for = url_for
        self._reload = reload
        self._reload_interval = reload_interval
        self._next_check = time.monotonic() + reload_interval
        self._reload_lock = threading.Lock()

    def search(self, request: SearchRequest) -> SearchResponse:
        """Decode and embed the query image, return the ``request.k`` nearest entries."""
        started = time.perf_counter()
        image = decode_image(request.image, max_pixels=self.limits.max_image_pixels)
        return self.search_image(image, request.k, request.filter, started=started)

    def search_image(self, image, k: int, filter: dict[str, Any] | None = None, *,
                     started: float | None = None) -> SearchResponse:
        started = time.perf_counter() if started is None else started
        self._maybe_reload()
        vector = self.embedder.encode([image])
        predicted = None
        if self.classifier is not None:
            from .twostep import classify_then_search

            labels, found = classify_then_search(self.classifier, self.index, vector, k, filter)
            predicted, hits = str(labels[0]), found[0]
        else:
            hits = self.index.search(vector, k, filter)[0]
        results = [SearchResult(id=h.id, label=h.metadata.get("label"), score=round(h.score, 6),
                                url=self.url_for(h.id, h.metadata)) for h in hits]
        return SearchResponse(results=results, took_ms=(time.perf_counter() - started) * 1000,
                              predicted_label=predicted)

    def search_payload(self, payload: Any) -> dict[str, Any]:
        """Validate a decoded JSON request body and answer it as a response dict."""
        return self.search(parse_search_request(payload, self.limits)).to_dict()

    def _maybe_reload(self) -> None:
        """Pick up an index saved by another process (e.g. `lookalike index` while serving)."""
        if self._reload is None or time.monotonic() < self._next_check:
            return
        with self._reload_lock:
            if time.monotonic() < self._next_check:
                return
            self._next_check = time.monotonic() + self._reload_interval
            try:
                fresh = self._reload(self.index)
            except Exception:  # noqa: BLE001 - keep serving the index we have
                logger.exception("index reload failed; still serving the loaded index")
                return
            if fresh is not None:
                check_compatible(self.embedder, fresh)
                self.index = fresh
                logger.info("reloaded index: %d entries", len(fresh))


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


def build_local_service(settings, *, embedder=None, url_for: UrlFor = local_url) -> SearchService:
    """The local-mode service: ONNX embedder + FAISS index in ``settings.index_dir``."""
    from .embedders import embedder_from_settings
    from .index.faiss_index import FaissIndex

    index = FaissIndex.load(settings.index_dir, ef_search=settings.hnsw_ef_search)
    if embedder is None:
        embedder = embedder_from_settings(_settings_for_index(settings, index))

    def reload(current: FaissIndex) -> FaissIndex | None:
        if current.stored_generation() != current.generation:
            return FaissIndex.load(settings.index_dir, ef_search=settings.hnsw_ef_search)
        return None

    classifier = None
    if getattr(settings, "classifier", None):
        from .twostep import Classifier

        classifier = Classifier.load(settings.classifier)
    return SearchService(embedder, index, limits=Limits.from_settings(settings), url_for=url_for, reload=reload,
                         classifier=classifier)


def _settings_for_index(settings, index):
    """Default the backbone to the one the index was built with, unless the user chose a model."""
    name = (index.model or {}).get("name", "")
    backbone = name.split("+")[0]
    if settings.model is None and backbone and backbone != settings.backbone:
        from .embedders.backbones import BACKBONES

        if backbone in BACKBONES:
            logger.info("index was built with %s; using it", backbone)
            return settings.replace(backbone=backbone)
    return settings
