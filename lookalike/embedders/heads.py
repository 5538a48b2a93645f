"""ONNX heads: small models applied after the backbone (a triplet-trained MLP, a PCA projection).

A head's input is the L2-normalised backbone vector ``(n, dim_in) float32``; its output is
L2-normalised again by the embedder, exactly as :class:`~lookalike.embedders.onnx.OnnxEmbedder`
does with ``head_path``. Facts about a head (kind, backbone, input width, training data) travel
inside the ONNX file as metadata, so a head file is all a user needs to ship. Heads are written
by :mod:`lookalike.eval.head_export`.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import check_vectors, l2_normalise

logger = logging.getLogger(__name__)

OPSET = 17
INPUT, OUTPUT = "features", "embedding"
META_PREFIX = "lookalike."


@functools.lru_cache(maxsize=16)
def _session(path: str, mtime_ns: int):
    import onnxruntime as ort

    try:
        return ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime has its own exception types for bad files
        raise ConfigError(f"cannot load ONNX head {path}: {exc}") from None


def session(path: Path):
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"head {path} does not exist")
    return _session(str(path.resolve()), path.stat().st_mtime_ns)


def head_dims(path: Path) -> tuple[int | None, int | None]:
    """``(dim_in, dim_out)`` declared by the head's ONNX graph (None when symbolic)."""
    s = session(path)
    dims = []
    for io in (s.get_inputs()[0], s.get_outputs()[0]):
        last = io.shape[-1] if io.shape else None
        dims.append(last if isinstance(last, int) else None)
    return dims[0], dims[1]


def apply_head(path: Path, vectors: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Backbone vectors ``(n, dim_in)`` → head output ``(n, dim_out) float32``, L2-normalised.

    The input rows are L2-normalised first, as the embedder does, so cached features and
    live queries go through the head identically.
    """
    s = session(path)
    dim_in, dim_out = head_dims(path)
    vectors = l2_normalise(check_vectors(vectors, dim_in or np.shape(vectors)[-1], f"input of head {path}"))
    if len(vectors) == 0:
        return np.zeros((0, dim_out or 0), np.float32)
    name = s.get_inputs()[0].name
    out = [s.run(None, {name: vectors[i:i + batch_size]})[0] for i in range(0, len(vectors), batch_size)]
    return l2_normalise(np.concatenate(out))


def head_info(path: Path) -> dict[str, Any]:
    """The ``lookalike.*`` metadata stored in a head file (JSON-decoded values)."""
    meta = session(path).get_modelmeta().custom_metadata_map
    out = {}
    for key, value in meta.items():
        if key.startswith(META_PREFIX):
            try:
                out[key[len(META_PREFIX):]] = json.loads(value)
            except ValueError:
                out[key[len(META_PREFIX):]] = value
    return out
