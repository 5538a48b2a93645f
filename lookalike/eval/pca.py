"""PCA of backbone features, fitted on a training split and shipped as an ONNX head.

A PCA projection is a linear layer, ``y = (x - mean) @ components.T``, so it is exported as an
ONNX ``Gemm`` and used through ``--head pca-256.onnx`` like any other head; the embedder then
re-normalises ``y`` so search stays a cosine similarity.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..embedders.base import check_vectors, l2_normalise
from ..errors import ConfigError


@dataclass(frozen=True)
class Pca:
    mean: np.ndarray  # (dim_in,) float32
    components: np.ndarray  # (dim, dim_in) float32, orthonormal rows
    explained_variance_ratio: np.ndarray  # (dim,) float64

    @property
    def dim(self) -> int:
        return int(self.components.shape[0])

    @property
    def dim_in(self) -> int:
        return int(self.components.shape[1])

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """L2-normalised backbone vectors ``(n, dim_in)`` → projected ``(n, dim) float32``, L2-normalised."""
        x = l2_normalise(check_vectors(vectors, self.dim_in, "PCA input"))
        return l2_normalise((x - self.mean) @ self.components.T)

    def truncate(self, dim: int) -> Pca:
        """The first ``dim`` components (PCA of a smaller size, without refitting)."""
        if not 1 <= dim <= self.dim:
            raise ConfigError(f"PCA dimension must be in 1..{self.dim}, got {dim}")
        return Pca(self.mean, self.components[:dim], self.explained_variance_ratio[:dim])

    def export_onnx(self, path: Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write the projection as an ONNX head ``(n, dim_in) → (n, dim)``."""
        from .head_export import export_linear

        bias = -(self.components @ self.mean)
        meta = {"kind": "pca", "dim_in": self.dim_in, "dim_out": self.dim,
                "explained_variance": round(float(self.explained_variance_ratio.sum()), 6), **(metadata or {})}
        return export_linear(self.components, bias, Path(path), meta)


def fit_pca(vectors: np.ndarray, dim: int) -> Pca:
    """Fit PCA on ``(n, dim_in)`` backbone vectors (L2-normalised first), keeping ``dim`` components.

    The sign of each component is fixed (largest absolute loading positive) so refits agree.
    """
    x = l2_normalise(np.asarray(vectors, dtype=np.float32))
    if x.ndim != 2 or len(x) < 2:
        raise ConfigError(f"PCA needs at least 2 vectors of shape (n, d), got {np.shape(vectors)}")
    max_dim = min(x.shape)
    if not 1 <= dim <= max_dim:
        raise ConfigError(f"PCA dimension must be in 1..{max_dim} (min of samples and features), got {dim}")
    mean = x.mean(axis=0)
    centred = (x - mean).astype(np.float64)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    vt = vt * signs[:, None]
    variance = singular ** 2
    ratio = variance / variance.sum() if variance.sum() > 0 else np.zeros_like(variance)
    return Pca(mean.astype(np.float32), np.ascontiguousarray(vt[:dim], dtype=np.float32), ratio[:dim])
