"""Embedders: a small protocol and a factory that picks one by name or file."""

from __future__ import annotations

from pathlib import Path

from .. import limits as _limits
from ..errors import ConfigError
from .base import Embedder, PreparingEmbedder, check_vectors, l2_normalise

__all__ = ["Embedder", "PreparingEmbedder", "check_vectors", "l2_normalise", "create_embedder", "embedder_from_settings"]


def create_embedder(backbone: str = "efficientnet-lite2", *, cache_dir: Path, model: Path | None = None,
                    weights: Path | str | None = None, head: Path | None = None,
                    batch_size: int = _limits.BATCH_SIZE, threads: int = 0, bulk: bool = False) -> Embedder:
    """Build the embedder for a backbone name, or for a custom ONNX ``model`` (whose
    preprocessing spec is read from ``model.with_suffix('.json')``)."""
    from .preprocess import PreprocessSpec
    from .onnx import OnnxEmbedder

    if model is not None:
        model = Path(model)
        spec_path = model.with_suffix(".json")
        if not spec_path.is_file():
            raise ConfigError(
                f"{model} needs a preprocessing spec at {spec_path}: "
                '{"resize": 256, "crop": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}')
        return OnnxEmbedder(model, PreprocessSpec.from_file(spec_path), name=model.stem, head_path=head,
                            batch_size=batch_size, threads=threads, bulk=bulk)

    from .backbones import get_backbone
    from .export import ensure_onnx

    spec = get_backbone(backbone).spec
    path = ensure_onnx(backbone, cache_dir, weights)
    return OnnxEmbedder(path, spec, name=backbone, head_path=head, batch_size=batch_size, threads=threads,
                        bulk=bulk)


def embedder_from_settings(settings, **options) -> Embedder:
    """The embedder ``settings`` describe; ``options`` (e.g. ``bulk=True`` for ingest) go to :func:`create_embedder`."""
    return create_embedder(settings.backbone, cache_dir=settings.cache_dir, model=settings.model,
                           weights=settings.weights, head=settings.head, batch_size=settings.batch_size,
                           threads=settings.threads, **options)
