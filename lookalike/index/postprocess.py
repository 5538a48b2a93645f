"""Label-free post-processing of backbone vectors, fitted on the collection being indexed.

``power-center``: signed square root of each component (power normalisation: it damps the few
large activations of a ReLU-pooled feature, so more channels take part in the cosine), L2,
minus the collection's mean of those vectors (centering: the direction every image shares
carries no information about which images are alike), L2 again::

    y = l2(sign(x) * sqrt(|x|));   stored = l2(y - mean)

A transform is a small frozen value: its ``kind``, the ``mean`` (float32), how many vectors it
was fitted on and a ``digest`` naming it. It is stored inside the index's model info
(``index.model["postprocess"]``, see :meth:`PostProcess.to_dict`), so the collection and every
query go through the same one. The stored vectors can be inverted (:meth:`PostProcess.invert`)
given the mean, so a refit never needs the images again. :meth:`PostProcess.apply_one` is the
same arithmetic in plain Python for the Lambda package, which ships without numpy.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:  # numpy stays out of the import path: the Lambda package ships without it
    import numpy as np

KINDS = ("none", "power-center")
FORMAT = 1
HEAD_META_KEY = "postprocess"  # head metadata naming the transform (its digest) a head applies
MODEL_KEY = "postprocess"  # where an index's model info holds its transform


def _digest(kind: str, mean_bytes: bytes) -> str:
    return hashlib.sha256(kind.encode() + b"\0" + mean_bytes).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class PostProcess:
    """One fitted transform; ``mean`` is ``(dim,) float32`` as little-endian bytes (hashable, numpy-free)."""

    kind: str = "none"
    dim: int = 0
    mean_bytes: bytes = b""
    fitted_count: int = 0
    digest: str = field(default="")

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"unknown post-processing {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.kind != "none" and len(self.mean_bytes) != 4 * self.dim:
            raise ConfigError(f"post-processing mean has {len(self.mean_bytes)} bytes, expected {4 * self.dim}")
        object.__setattr__(self, "digest", _digest(self.kind, self.mean_bytes) if self.kind != "none" else "none")

    # ----- building ------------------------------------------------------------------------
    @classmethod
    def none(cls) -> PostProcess:
        return cls()

    @classmethod
    def unfitted(cls, kind: str, dim: int) -> PostProcess:
        """``kind`` with a zero mean: power normalisation only (what an index holds before its first fit)."""
        if kind == "none":
            return cls()
        return cls(kind, int(dim), bytes(4 * int(dim)), 0)

    @classmethod
    def fit(cls, kind: str, vectors: np.ndarray) -> PostProcess:
        """Fit ``kind`` on backbone vectors ``(n, dim) float32`` (n >= 1; no labels)."""
        import numpy as np

        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2 or len(x) == 0:
            raise ConfigError(f"fitting post-processing needs (n, dim) vectors with n >= 1, got {x.shape}")
        if kind == "none":
            return cls()
        mean = power_normalise(x).astype(np.float64).mean(axis=0).astype("<f4")
        return cls(kind, int(x.shape[1]), mean.tobytes(), int(len(x)))

    @property
    def active(self) -> bool:
        return self.kind != "none"

    @property
    def mean(self) -> np.ndarray:
        import numpy as np

        return np.frombuffer(self.mean_bytes, dtype="<f4").astype(np.float32)

    # ----- applying ------------------------------------------------------------------------
    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Backbone vectors ``(n, dim)`` → transformed ``(n, dim) float32``, unit rows."""
        from ..embedders.base import check_vectors, l2_normalise

        if not self.active:
            return check_vectors(vectors, self.dim or vectors.shape[-1])
        x = check_vectors(vectors, self.dim, "post-processing input")
        return l2_normalise(power_normalise(x) - self.mean)

    def apply_one(self, vector: Sequence[float]) -> list[float]:
        """One backbone vector (a list of floats) → the transformed list, in plain Python."""
        if not self.active:
            return [float(v) for v in vector]
        if len(vector) != self.dim:
            raise ValueError(f"post-processing input: expected {self.dim} values, got {len(vector)}")
        root = [math.copysign(math.sqrt(abs(v)), v) for v in vector]
        norm = math.sqrt(math.fsum(v * v for v in root)) or 1.0
        mean = struct.unpack(f"<{self.dim}f", self.mean_bytes)
        centred = [v / norm - m for v, m in zip(root, mean)]
        norm = math.sqrt(math.fsum(v * v for v in centred)) or 1.0
        return [v / norm for v in centred]

    def apply_rows(self, rows):
        """A ``(n, dim)`` numpy array or a list of lists (the Lambda's vectors) → the same kind, transformed."""
        if not self.active:
            return rows
        if isinstance(rows, list):
            return [self.apply_one(row) for row in rows]
        return self.apply(rows)

    def invert(self, stored: np.ndarray) -> np.ndarray:
        """Stored (transformed) vectors ``(n, dim)`` → the backbone's unit vectors they came from.

        ``stored = l2(y - m)`` with ``|y| = 1``: ``y = m + t·stored`` where ``t > 0`` solves
        ``|m + t·s|² = 1``; then ``x = l2(sign(y)·y²)`` undoes the square root.
        """
        import numpy as np

        from ..embedders.base import check_vectors, l2_normalise

        if not self.active:
            return check_vectors(stored, self.dim or stored.shape[-1])
        s = check_vectors(stored, self.dim, "stored vectors").astype(np.float64)
        m = self.mean.astype(np.float64)
        ms = s @ m
        t = -ms + np.sqrt(np.maximum(ms * ms - m @ m + 1.0, 0.0))
        y = m[None, :] + t[:, None] * s
        return l2_normalise(np.sign(y) * y * y)

    # ----- storing -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict for the index's model info (the mean as base64 float32)."""
        if not self.active:
            return {"kind": "none"}
        return {"kind": self.kind, "format": FORMAT, "dim": self.dim, "fitted_count": self.fitted_count,
                "mean": base64.b64encode(self.mean_bytes).decode("ascii"), "digest": self.digest}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PostProcess:
        """The transform stored in model info; no entry (an index built before) is ``none``."""
        if not data or data.get("kind", "none") == "none":
            return cls()
        if data.get("format", FORMAT) != FORMAT:
            raise ConfigError(f"post-processing format {data.get('format')!r} is newer than this lookalike; upgrade")
        try:
            made = cls(str(data["kind"]), int(data["dim"]), base64.b64decode(data["mean"]),
                       int(data.get("fitted_count", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"the index's post-processing entry is damaged ({exc}); re-index with --refit") from None
        if data.get("digest") and data["digest"] != made.digest:
            raise ConfigError("the index's post-processing entry is damaged (digest mismatch); re-index with --refit")
        return made

    @classmethod
    def of_index(cls, index) -> PostProcess:
        return cls.from_dict((getattr(index, "model", None) or {}).get(MODEL_KEY))

    # ----- as an ONNX head -----------------------------------------------------------------
    def export_onnx(self, path: Path, metadata: Mapping[str, Any] | None = None) -> Path:
        """Write the transform as an ONNX head ``(n, dim) → (n, dim)`` (sqrt → L2 → minus the mean).

        The embedder L2-normalises a head's output, which is the last step. For an endpoint that
        must emit final vectors; the head's metadata names the transform so a search service
        holding the same one does not apply it twice.
        """
        import json

        import onnx
        from onnx import TensorProto, helper, numpy_helper

        from ..fsutil import atomic_write_bytes
        from ..embedders.heads import INPUT, META_PREFIX, OPSET, OUTPUT

        if not self.active:
            raise ConfigError("post-processing 'none' has nothing to export")
        nodes = [helper.make_node("Abs", [INPUT], ["abs"]), helper.make_node("Sqrt", ["abs"], ["root"]),
                 helper.make_node("Sign", [INPUT], ["sign"]), helper.make_node("Mul", ["sign", "root"], ["signed"]),
                 helper.make_node("LpNormalization", ["signed"], ["unit"], axis=1, p=2),
                 helper.make_node("Sub", ["unit", "mean"], [OUTPUT])]
        graph = helper.make_graph(
            nodes, "postprocess_head", [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", self.dim])],
            [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", self.dim])],
            initializer=[numpy_helper.from_array(self.mean, "mean")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lookalike")
        model.ir_version = min(model.ir_version, 9)
        onnx.checker.check_model(model)
        meta = {"kind": f"postprocess-{self.kind}", "dim_in": self.dim, "dim_out": self.dim,
                HEAD_META_KEY: self.digest, "fitted_count": self.fitted_count, **(metadata or {})}
        for key, value in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = META_PREFIX + key, json.dumps(value)
        atomic_write_bytes(Path(path), model.SerializeToString())
        return Path(path)


def power_normalise(vectors: np.ndarray) -> np.ndarray:
    """``l2(sign(x)·sqrt(|x|))`` of ``(n, d)`` rows, float32."""
    import numpy as np

    from ..embedders.base import l2_normalise

    x = np.asarray(vectors, dtype=np.float32)
    return l2_normalise(np.sign(x) * np.sqrt(np.abs(x)))


def embedder_applies(embedder, transform: PostProcess) -> bool:
    """True when ``embedder``'s ONNX head already is ``transform`` (then a service must not apply it again)."""
    head = getattr(embedder, "head_path", None)
    if not transform.active or head is None:
        return False
    from ..embedders.heads import head_info

    return head_info(head).get(HEAD_META_KEY) == transform.digest


class TransformedEmbedder:
    """An embedder whose output goes through ``transform`` (what batch ingest stores); same protocol."""

    def __init__(self, embedder, transform: PostProcess):
        self.embedder, self.transform = embedder, transform
        self.name, self.dim = embedder.name, embedder.dim
        self.fingerprint = getattr(embedder, "fingerprint", None)
        if hasattr(embedder, "prepare"):
            self.prepare = embedder.prepare

    def encode_prepared(self, batch):
        return self.transform.apply(self.embedder.encode_prepared(batch))

    def encode(self, images):
        return self.transform.apply(self.embedder.encode(images))
