"""Writing ONNX heads (a trained torch module, a linear projection) with their metadata.

Reading and applying heads is :mod:`lookalike.embedders.heads`; this is the offline half.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..embedders.heads import INPUT, META_PREFIX, OPSET, OUTPUT
from ..fsutil import atomic_write_bytes


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
