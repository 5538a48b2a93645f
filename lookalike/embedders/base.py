"""The embedder protocol: images in, ``(n, dim) float32`` L2-normalised vectors out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        """RGB images → ``(len(images), dim) float32``, each row L2-normalised."""
        ...


@runtime_checkable
class PreparingEmbedder(Embedder, Protocol):
    """An embedder whose CPU preprocessing can run in worker threads apart from inference,
    so batch ingest keeps the model busy (``encode == encode_prepared ∘ stack ∘ prepare``)."""

    def prepare(self, image: Image.Image) -> np.ndarray:
        """One RGB image → the model's input tensor for it, e.g. ``(3, H, W) float32``. It may take
        ``out=``, an array it returned before and the caller is done with, to write into; batch
        ingest then hands back spent arrays instead of letting each image map new memory."""
        ...

    def encode_prepared(self, batch: np.ndarray) -> np.ndarray:
        """``(n, ...)`` stacked ``prepare`` outputs (float32 tensors, or uint8 pixels for an engine
        that scales them itself) → ``(n, dim) float32``."""
        ...


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero); returns float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def check_vectors(vectors, dim: int, what: str = "vectors") -> np.ndarray:
    """Coerce to C-contiguous ``(n, dim) float32``; the error states expected and actual shape/dtype."""
    arr = np.asarray(vectors)
    if arr.ndim == 1 and arr.shape[0] == dim:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"{what}: expected shape (n, {dim}), got {arr.shape} ({arr.dtype})")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{what}: expected a float dtype, got {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)
