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

from .. import memory
from ..errors import NotFound
from ..imaging import DecodeBudget, decode_image, image_pixels
from .compat import check_compatible
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
        self.classifier = classifier  # two-step search: see lookalike.search.twostep
        self._index = index
        self.limits = limits
        # Shared by every request this service answers: bounds the memory of large decodes.
        self.budget = DecodeBudget(limits.decode_budget_pixels, wait=limits.decode_wait_seconds, on_release=memory.trim)
        self.url_for = url_for
        self._reload = reload
        self._reload_interval = reload_interval
        self._next_check = time.monotonic() + reload_interval
        self._reload_lock = threading.Lock()
        self._transform = None  # (index, its query transform): re-read when the index is reloaded

    @property
    def index(self):
        """The current index: one saved by another process since the last check is picked up
        here, so every route (search, healthz, images) sees the same entries."""
        self._maybe_reload()
        return self._index

    def search(self, request: SearchRequest) -> SearchResponse:
        """Decode and embed the query image, return the ``request.k`` nearest entries (or, for
        ``request.id``, the entries nearest to that entry's stored vector)."""
        started = time.perf_counter()
        if request.id is not None:
            return self.search_id(request.id, request.k, request.filter, started=started)
        prepare = getattr(self.embedder, "prepare", None)
        with self.budget.hold(image_pixels(request.image)):
            # Grey stays one plane when prepared here (identical arrays, a third of the resizing).
            image = decode_image(request.image, max_pixels=self.limits.max_image_pixels, grey=prepare is not None)
            # The model input is small: once it is made, the decoded image (and its budget) can go.
            query = prepare(image)[None] if prepare else image
            del image
        vector = self.embedder.encode_prepared(query) if prepare else self.embedder.encode([query])
        return self.search_vector(self.query_vectors(vector), request.k, request.filter, started=started)

    def search_image(self, image, k: int, filter: dict[str, Any] | None = None, *,
                     started: float | None = None) -> SearchResponse:
        started = time.perf_counter() if started is None else started
        return self.search_vector(self.query_vectors(self.embedder.encode([image])), k, filter, started=started)

    def query_vectors(self, vectors):
        """The embedder's vectors through the index's post-processing (``index.model["postprocess"]``),
        the transform its entries went through; a numpy array or, in the Lambda, lists of floats."""
        index = self.index
        if self._transform is None or self._transform[0] is not index:
            from ..index.postprocess import PostProcess, embedder_applies  # numpy-free, in the Lambda package

            transform = PostProcess.of_index(index)
            # A head exported from this very transform already applied it: never twice.
            if not transform.active or embedder_applies(self.embedder, transform):
                transform = None
            self._transform = (index, transform)
        transform = self._transform[1]
        return vectors if transform is None else transform.apply_rows(vectors)

    def search_id(self, id: str, k: int, filter: dict[str, Any] | None = None, *,
                  started: float | None = None) -> SearchResponse:
        """"More like this": the ``k`` entries nearest to an indexed entry, itself left out.

        Uses the stored vector: no image is decoded and the model is not called.
        """
        started = time.perf_counter() if started is None else started
        index = self.index
        try:
            vector = index.get_vectors([id])
        except KeyError:
            raise NotFound(f"No image with id {id!r}.") from None
        response = self.search_vector(vector, min(k + 1, self.limits.k_max + 1), filter, started=started)
        response.results = [r for r in response.results if r.id != id][:k]
        return response

    def search_vector(self, vector, k: int, filter: dict[str, Any] | None = None, *,
                      started: float | None = None) -> SearchResponse:
        """The ``k`` entries nearest to a ``(1, dim)`` query vector (two-step with a classifier)."""
        started = time.perf_counter() if started is None else started
        index = self.index
        predicted = None
        if self.classifier is not None:
            from .twostep import classify_then_search

            labels, found = classify_then_search(self.classifier, index, vector, k, filter)
            predicted, hits = str(labels[0]), found[0]
        else:
            hits = index.search(vector, k, filter)[0]
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
                fresh = self._reload(self._index)
            except Exception:  # noqa: BLE001 - keep serving the index we have
                logger.exception("index reload failed; still serving the loaded index")
                return
            if fresh is not None:
                check_compatible(self.embedder, fresh)
                self._index = fresh
                logger.info("reloaded index: %d entries", len(fresh))
