"""ONNX heads: small models applied after the backbone (a triplet-trained MLP, a PCA projection).

A head's input is the L2-normalised backbone vector ``(n, dim_in) float32``; its output is
L2-normalised again by the embedder, exactly as :class:`~lookalike.embedders.onnx.OnnxEmbedder`
does with ``head_path``. Facts about a head (kind, backbone, input width, training data) travel
inside the ONNX file as metadata, so a head file is all a user needs to ship.
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .embedders.base import check_vectors, l2_normalise
from .errors import ConfigError
from .fsutil import atomic_write_bytes

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


def check_head_for(path: Path, embedder_dim: int, backbone: str | None = None) -> None:
    """Refuse a head whose input width differs from the backbone's output."""
    dim_in, _ = head_dims(path)
    if dim_in is not None and dim_in != embedder_dim:
        trained = head_info(path).get("backbone")
        raise ConfigError(f"head {path} takes {dim_in}-d vectors but the backbone makes {embedder_dim}-d ones"
                          + (f"; it was trained on {trained}" if trained else ""))


def _with_metadata(model_bytes: bytes, metadata: dict[str, Any]) -> bytes:
    import onnx

    model = onnx.load_from_string(model_bytes)
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = META_PREFIX + key, json.dumps(value)
    return model.SerializeToString()


def export_torch(module, dim_in: int, path: Path, metadata: dict[str, Any]) -> Path:
    """Export an eval-mode torch head ``(n, dim_in) → (n, dim_out)`` with a dynamic batch axis."""
    import warnings

    import torch

    module.eval()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / "head.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (torch.zeros(2, dim_in),), str(tmp_path), input_names=[INPUT],
                              output_names=[OUTPUT], dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
        data = _with_metadata(tmp_path.read_bytes(), metadata)
    atomic_write_bytes(Path(path), data)
    return Path(path)


def export_linear(weight: np.ndarray, bias: np.ndarray, path: Path, metadata: dict[str, Any]) -> Path:
    """Export ``y = x @ weight.T + bias`` (weight ``(dim_out, dim_in)``) as an ONNX head."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.ascontiguousarray(weight, dtype=np.float32)
    bias = np.ascontiguousarray(bias, dtype=np.float32).reshape(-1)
    dim_out, dim_in = weight.shape
    if bias.shape != (dim_out,):
        raise ValueError(f"bias must have shape ({dim_out},), got {bias.shape}")
    graph = helper.make_graph(
        [helper.make_node("Gemm", [INPUT, "weight", "bias"], [OUTPUT], transB=1)], "linear_head",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", dim_in])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", dim_out])],
        initializer=[numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lookalike")
    model.ir_version = min(model.ir_version, 9)  # readable by older ONNX Runtime releases too
    onnx.checker.check_model(model)
    atomic_write_bytes(Path(path), _with_metadata(model.SerializeToString(), metadata))
    return Path(path)
