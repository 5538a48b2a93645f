"""Other poolings of the backbone's feature map, for evaluation only (serving pools by average).

``gem3``: generalised-mean pooling, ``(mean x³)^(1/3)`` over the ``(h, w)`` map (Radenović et al.
2018); ``multiscale``: the average-pooled, L2-normalised vector at input scales 1/√2, 1 and √2,
summed and L2-normalised (the model is fully convolutional up to its global pooling, so it runs
at any input size). Both read the map just before the backbone's global average pooling, from a
copy of its ONNX graph with that tensor as the output and the input size left free.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..embedders.base import l2_normalise
from ..embedders.preprocess import to_array
from ..errors import ConfigError

SCALES = (2 ** -0.5, 1.0, 2 ** 0.5)
GEM_P = 3.0


def feature_map_model(model_path: Path, cache_dir: Path) -> Path:
    """A copy of ``model_path`` that outputs the ``(n, C, h, w)`` map fed to its GlobalAveragePool."""
    import onnx

    out = Path(cache_dir) / "models" / f"{Path(model_path).stem}-featuremap.onnx"
    if out.is_file():
        return out
    model = onnx.load(str(model_path))
    pool = [n for n in model.graph.node if n.op_type == "GlobalAveragePool"]
    if len(pool) != 1:
        raise ConfigError(f"{model_path}: expected one GlobalAveragePool, found {len(pool)}")
    del model.graph.output[:]
    model.graph.output.append(onnx.helper.make_tensor_value_info(pool[0].input[0], onnx.TensorProto.FLOAT,
                                                                 ["batch", "c", "h", "w"]))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    del model.graph.value_info[:]  # shapes inferred for 260×260 would be wrong at other sizes
    from ..fsutil import atomic_write_bytes

    atomic_write_bytes(out, model.SerializeToString())
    return out


class SpatialEmbedder:
    """The backbone with another pooling (``gem3`` or ``multiscale``); ``encode(images)`` → ``(n, C)``."""

    def __init__(self, backbone, kind: str, cache_dir: Path, threads: int = 0):
        import onnxruntime as ort

        if kind not in ("gem3", "multiscale"):
            raise ConfigError(f"unknown pooling {kind!r}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        path = feature_map_model(backbone.model_path, cache_dir)
        self._session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self.kind, self.spec, self.dim = kind, backbone.spec, backbone.dim
        self.name = f"{backbone.name}-{kind}"
        self.fingerprint = getattr(backbone, "fingerprint", None)
        self.title = (f"{backbone.name} GeM p={GEM_P:g}" if kind == "gem3" else
                      f"{backbone.name} multi-scale ({', '.join(f'{s:.2f}' for s in SCALES)})")

    def _map(self, images, scale: float) -> np.ndarray:
        spec = self.spec
        if scale != 1.0:
            crop = int(round(spec.crop * scale))
            spec = dataclasses.replace(spec, crop=crop, resize=max(crop, int(round(spec.resize * scale))))
        return self._session.run(None, {self._input: np.stack([to_array(im, spec) for im in images])})[0]

    def encode(self, images) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, self.dim), np.float32)
        if self.kind == "gem3":
            fmap = np.maximum(self._map(images, 1.0), 1e-6).astype(np.float64)
            return l2_normalise((fmap ** GEM_P).mean(axis=(2, 3)) ** (1 / GEM_P))
        total = sum(l2_normalise(self._map(images, s).mean(axis=(2, 3))) for s in SCALES)
        return l2_normalise(total)


def spatial_embedder(backbone, kind: str, cache_dir: Path) -> SpatialEmbedder:
    if not hasattr(backbone, "model_path"):
        raise ConfigError("GeM and multi-scale evaluation need the ONNX Runtime backbone (--engine onnxruntime)")
    return SpatialEmbedder(backbone, kind, cache_dir)
