"""The local-mode search service: ONNX embedder + the FAISS index in ``settings.index_dir``."""

from __future__ import annotations

import logging

from .schema import Limits
from .service import SearchService, UrlFor, local_url

logger = logging.getLogger(__name__)


def build_local_service(settings, *, embedder=None, url_for: UrlFor = local_url) -> SearchService:
    """The local-mode service: ONNX embedder + FAISS index in ``settings.index_dir``."""
    from ..embedders import embedder_from_settings
    from ..index.faiss_index import FaissIndex

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
        from ..embedders.backbones import BACKBONES

        if backbone in BACKBONES:
            logger.info("index was built with %s; using it", backbone)
            return settings.replace(backbone=backbone)
    return settings
