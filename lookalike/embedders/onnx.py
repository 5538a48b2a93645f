"""ONNX Runtime embedder: any ONNX image feature extractor + its preprocessing spec,
optionally followed by an ONNX head (e.g. a triplet-trained projection)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ConfigError
from ..limits import BATCH_SIZE
from .base import l2_normalise
from .preprocess import PIXELS, PreprocessSpec, to_array

logger = logging.getLogger(__name__)


def _session(path: Path, threads: int, bulk: bool = False):
    import onnxruntime as ort

    if not Path(path).is_file():
        raise ConfigError(f"ONNX model {path} does not exist")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    if bulk:
        # Bulk ingest shares the cores with the decoding/preprocessing threads:
        # - idle ONNX Runtime threads sleep instead of spinning, leaving the cores to those threads;
        # - no memory pattern: ONNX Runtime plans one per input shape (the last batch differs) on
        #   top of its arena, so without it peak memory is about 30% lower at the same speed.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.enable_mem_pattern = False
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise ConfigError(f"cannot load ONNX model {path}: {exc}") from None


def run_suffix(engine: str, precision: str) -> str:
    """The fingerprint's mark of how a model runs ("" for onnxruntime/fp32, the historical default)."""
    return "" if (engine, precision) == ("onnxruntime", "fp32") else f"@{engine}-{precision}"


def pixels_mark(pixels: str) -> str:
    """The fingerprint's mark of which Pillow made the pixels ("" for Pillow, as before it was marked)."""
    return "" if pixels == "pillow" else f"+{pixels}"


def _file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


class OnnxEmbedder:
    """Embeds RGB images with an ONNX model: ``(n, 3, H, W)`` in → features out.

    A 4-D output ``(n, C, h, w)`` is average-pooled to ``(n, C)``. With ``head``, the
    L2-normalised features go through the head model (``(n, dim_in)`` → ``(n, dim)``).
    The result is always ``(n, dim) float32`` with unit-length rows. ``bulk`` tunes the
    ONNX Runtime session for batch ingest beside preprocessing threads (see ``_session``).
    ``precision`` says what the file holds (``fp32``, or ``int8`` for a quantized export); it is
    part of the fingerprint. Subclasses run the model with another engine (``_open``).
    """

    engine = "onnxruntime"
    # What ``prepare`` makes and ``encode_prepared`` takes: the model's own input here; an engine
    # that scales pixels inside its graph takes them as they are (see OpenVinoEmbedder).
    prepared_dtype = np.float32
    # The fingerprint's mark of an engine that takes uint8 pixels and scales them itself ("" here).
    input_mark = ""

    def __init__(self, model_path: Path, spec: PreprocessSpec, *, name: str | None = None,
                 head_path: Path | None = None, batch_size: int = BATCH_SIZE, threads: int = 0, bulk: bool = False,
                 precision: str = "fp32"):
        self.model_path = Path(model_path)
        self.spec = spec
        self.batch_size = batch_size
        self.precision = precision
        self._infer = self._open(threads, bulk)
        self._head = _session(head_path, threads, bulk) if head_path else None
        self.head_path = Path(head_path) if head_path else None
        base = name or self.model_path.stem
        self.name = f"{base}+{self.head_path.stem}" if self.head_path else base
        # Output widths are probed once: ONNX shapes may be symbolic.
        probe = np.zeros((1, *self.prepared_shape), self.prepared_dtype)
        if self._head is not None:
            self._check_head(base, int(self._features(probe).shape[1]))
        self.dim = int(self._run(probe).shape[1])

    def _open(self, threads: int, bulk: bool):
        """Load the model; returns ``run(batch) -> raw output``. Other engines override this."""
        if self.precision not in ("fp32", "int8"):
            raise ConfigError(f"ONNX Runtime runs fp32 or int8 models, not {self.precision}; "
                              "use --engine openvino for bf16, int8-bf16 and int8-w7")
        self._session = _session(self.model_path, threads, bulk)
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ConfigError(f"{self.model_path}: expected one input (n, 3, H, W), found {len(inputs)}")
        input_name = inputs[0].name
        return lambda batch: self._session.run(None, {input_name: batch})[0]

    def _check_head(self, base: str, backbone_dim: int) -> None:
        """Refuse a head of another width here, not as a shape error deep inside ONNX Runtime."""
        shape = self._head.get_inputs()[0].shape
        head_in = shape[-1] if shape else None
        if isinstance(head_in, int) and head_in != backbone_dim:
            trained = self._head.get_modelmeta().custom_metadata_map.get("lookalike.backbone", "").strip('"')
            raise ConfigError(f"head {self.head_path} takes {head_in}-d vectors but {base} makes {backbone_dim}-d "
                              "ones" + (f"; it was trained on {trained}" if trained else "")
                              + "; use a head trained on this backbone")

    @property
    def fingerprint(self) -> str:
        """Identifies the exact model (and head) bytes, the pixels fed to it and how it runs; stored in
        an index to catch mix-ups. ONNX Runtime fp32 on Pillow's pixels is the file digest alone, as in
        indexes made before engines and precisions existed; Pillow-SIMD's pixels add ``+pillow-simd``,
        pixels scaled inside the engine's graph ``+u8``, any other way of running ``@engine-precision``."""
        return self.fingerprint_with(PIXELS)

    def fingerprint_with(self, pixels: str) -> str:
        """The fingerprint where ``pixels`` (``pillow`` | ``pillow-simd``) prepares the images: the
        model archive's, whose container installs Pillow, differs from a Pillow-SIMD build machine's."""
        parts = [_file_digest(self.model_path)] + ([_file_digest(self.head_path)] if self.head_path else [])
        return "-".join(parts) + pixels_mark(pixels) + self.input_mark + run_suffix(self.engine, self.precision)

    @property
    def prepared_shape(self) -> tuple[int, int, int]:
        return (3, self.spec.crop, self.spec.crop)

    def prepare(self, image: Image.Image, out: np.ndarray | None = None) -> np.ndarray:
        """One RGB image → ``(3, crop, crop) float32``, into ``out`` if given (a spent one, reused);
        safe to call from worker threads."""
        return to_array(image, self.spec, out)

    def encode_prepared(self, batch: np.ndarray) -> np.ndarray:
        """Stacked ``prepare`` outputs, ``(n, 3, crop, crop) float32`` here → ``(n, dim) float32``, L2-normalised."""
        batch = np.asarray(batch)
        if not np.can_cast(batch.dtype, self.prepared_dtype, "same_kind"):  # floats are not pixels
            raise ValueError(f"expected {np.dtype(self.prepared_dtype).name} values from prepare, got {batch.dtype}")
        batch = batch.astype(self.prepared_dtype, copy=False)
        expected = self.prepared_shape
        if batch.ndim != 4 or batch.shape[1:] != expected:
            raise ValueError(f"expected a batch of shape (n, {', '.join(map(str, expected))}), got {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = [self._run(batch[i:i + self.batch_size]) for i in range(0, len(batch), self.batch_size)]
        return np.concatenate(out)

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        """RGB images → ``(len(images), dim) float32``, each row L2-normalised."""
        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.encode_prepared(np.stack([self.prepare(im) for im in images]))

    def _features(self, batch: np.ndarray) -> np.ndarray:
        """The backbone's L2-normalised ``(n, d)`` features, before any head."""
        features = self._infer(batch)
        if features.ndim == 4:
            features = features.mean(axis=(2, 3))
        if features.ndim != 2:
            raise ConfigError(f"{self.model_path}: output must be (n, d) or (n, c, h, w), got {features.shape}")
        return l2_normalise(features)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        features = self._features(batch)
        if self._head is not None:
            head_input = self._head.get_inputs()[0].name
            features = l2_normalise(self._head.run(None, {head_input: features})[0])
        return features
