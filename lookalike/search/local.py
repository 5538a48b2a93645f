"""The local-mode search service: ONNX embedder + the FAISS index in ``settings.index_dir``."""

from __future__ import annotations

import logging
import threading

from .schema import Limits
from .service import SearchService, UrlFor, local_url

logger = logging.getLogger(__name__)


def build_local_service(settings, *, embedder=None, url_for: UrlFor = local_url) -> SearchService:
    """The local-mode service: ONNX embedder + FAISS index in ``settings.index_dir``."""
    from ..embedders import embedder_from_settings
    from ..index.faiss_index import FaissIndex
    from ..index.faiss_params import search_params_from

    def load() -> FaissIndex:
        index = FaissIndex.load(settings.index_dir, mmap=True, **search_params_from(settings))
        # Fault the mapping in beside the requests: until then each search pays a page fault per
        # 4 KB it reads first (1M vectors: 3.2 ms a query against 1.8 ms warm).
        threading.Thread(target=index.warm, name="lookalike-index-warm", daemon=True).start()
        return index

    index = load()
    if embedder is None:
        embedder = embedder_from_settings(settings_for_model(settings, index.model))

    def reload(current: FaissIndex) -> FaissIndex | None:
        return load() if current.stored_generation() != current.generation else None

    classifier = None
    if getattr(settings, "classifier", None):
        from .twostep import Classifier

        classifier = Classifier.load(settings.classifier)
    return SearchService(embedder, index, limits=Limits.from_settings(settings), url_for=url_for, reload=reload,
                         classifier=classifier)


def settings_for_index_dir(settings):
    """``settings`` for embedding into the index in ``settings.index_dir``, if there is one: its
    backbone, engine and precision wherever the user left them unset (see :func:`settings_for_model`)."""
    from ..index.faiss_index import FaissIndex
    from ..index.faiss_store import read_manifest

    if not FaissIndex.exists(settings.index_dir):
        return settings
    return settings_for_model(settings, read_manifest(settings.index_dir).get("model"))


def settings_for_model(settings, model: dict | None):
    """Default the backbone to the one the index was built with, unless the user chose a model,
    and the engine and precision to the index's (onnxruntime/fp32 for an index made before they
    were recorded), unless the user chose them: vectors of two precisions never share an index."""
    from .compat import stored_run

    name = (model or {}).get("name", "")
    backbone = name.split("+")[0]
    if settings.model is None and backbone and backbone != settings.backbone:
        from ..embedders.backbones import BACKBONES

        if backbone in BACKBONES:
            logger.info("index was built with %s; using it", backbone)
            settings = settings.replace(backbone=backbone)
    run = stored_run(model)
    if run and (settings.engine is None or settings.precision is None):
        settings = settings.replace(engine=settings.engine or run["engine"],
                                    precision=settings.precision or run["precision"])
    return settings
