"""Embedders: a small protocol and a factory that picks one by name or file."""

from __future__ import annotations

from pathlib import Path

from .. import limits as _limits
from ..errors import ConfigError
from .base import Embedder, PreparingEmbedder, check_vectors, l2_normalise

__all__ = ["Embedder", "PreparingEmbedder", "check_vectors", "l2_normalise", "create_embedder", "default_embedder",
           "embedder_from_settings"]


def create_embedder(backbone: str = "efficientnet-lite2", *, cache_dir: Path, model: Path | None = None,
                    weights: Path | str | None = None, head: Path | None = None,
                    batch_size: int = _limits.BATCH_SIZE, threads: int = 0, bulk: bool = False,
                    engine: str | None = "onnxruntime", precision: str | None = "fp32") -> Embedder:
    """Build the embedder for a backbone name, or for a custom ONNX ``model`` (whose
    preprocessing spec is read from ``model.with_suffix('.json')``).

    ``engine`` (onnxruntime | openvino) and ``precision`` (fp32 | int8 | bf16 | int8-bf16 | int8-w7) given as
    None take the measured default for this CPU (:func:`lookalike.embedders.choice.resolve`), as unset
    settings do; int8, int8-bf16 and int8-w7 run a quantized copy of the model, made once and cached
    (:mod:`lookalike.embedders.quantize`). ``default_embedder`` is the default one.
    """
    from ..config import HALF_RANGE, QUANTIZED  # here, not at the top: model.tar.gz ships this package without config.py
    from .choice import resolve
    from .preprocess import PreprocessSpec

    # Only the bundled backbone was measured; a custom model or weights stay fp32 unless asked. A head
    # takes the backbone's run, so a head is trained and used on the vectors the backbone serves.
    run = resolve(engine, precision, backbone=backbone, custom=model is not None or weights is not None)
    if model is not None:
        path, name = Path(model), Path(model).stem
        spec_path = path.with_suffix(".json")
        if not spec_path.is_file():
            raise ConfigError(
                f"{model} needs a preprocessing spec at {spec_path}: "
                '{"resize": 256, "crop": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}')
        spec = PreprocessSpec.from_file(spec_path)
    else:
        from .backbones import get_backbone
        from .export import ensure_onnx

        spec, name = get_backbone(backbone).spec, backbone
        path = ensure_onnx(backbone, cache_dir, weights)
    if run.precision in QUANTIZED:
        from .quantize import ensure_int8

        path = ensure_int8(path, cache_dir, spec, half_range=run.precision in HALF_RANGE)
    if run.engine == "openvino":
        from .openvino import OpenVinoEmbedder as cls
    elif run.engine == "onnxruntime":
        from .onnx import OnnxEmbedder as cls
    else:
        raise ConfigError(f"unknown engine {run.engine!r}; use onnxruntime or openvino")
    return cls(path, spec, name=name, head_path=head, batch_size=batch_size, threads=threads, bulk=bulk,
               precision=run.precision)


def embedder_from_settings(settings, **options) -> Embedder:
    """The embedder ``settings`` describe; ``options`` (e.g. ``bulk=True`` for ingest) go to :func:`create_embedder`.

    With ``settings.engine``/``precision`` unset this is the default embedder (the measured
    fastest safe configuration for this CPU); for an existing index use
    :func:`lookalike.search.local.settings_for_index_dir` first, so its engine/precision are kept."""
    return create_embedder(settings.backbone, cache_dir=settings.cache_dir, model=settings.model,
                           weights=settings.weights, head=settings.head, batch_size=settings.batch_size,
                           threads=settings.threads, engine=settings.engine, precision=settings.precision,
                           **options)


def default_embedder(settings, **options) -> Embedder:
    """The embedder a new index gets from ``settings`` with engine and precision unset: the
    measured fastest safe configuration for this CPU (see :mod:`lookalike.embedders.choice`)."""
    return embedder_from_settings(settings.replace(engine=None, precision=None), **options)
