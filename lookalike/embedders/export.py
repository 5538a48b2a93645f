"""Export a backbone to ONNX once and cache it, keyed by a hash of the weights and this code.

The cached file is ``<cache>/models/<name>-<key>.onnx`` with its preprocessing spec beside
it as ``.json``. Writes go to a temporary file renamed into place, under a file lock, so
concurrent processes never see a half-written model.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import tempfile
from pathlib import Path

from ..fsutil import atomic_write_bytes, file_lock
from . import backbones

logger = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "pixels", "features"


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(name: str, weights: Path | str) -> str:
    """16 hex chars identifying (weights content, export code, backbone code, name)."""
    digest = hashlib.sha256(name.encode())
    digest.update((_hash_file(weights) if isinstance(weights, Path) else str(weights)).encode())
    for module in (backbones, inspect.getmodule(cache_key)):
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:16]


def export_module(module, path: Path, input_shape: tuple[int, ...]) -> None:
    """Export a torch module with a dynamic batch axis to ``path`` (atomically)."""
    import warnings

    import torch

    module.eval()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / "model.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # constant-folding notes from the exporter
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is still the reliable one here
            torch.onnx.export(
                module, (torch.zeros(*input_shape),), str(tmp_path),
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=OPSET, dynamo=False,
            )
        atomic_write_bytes(path, tmp_path.read_bytes())


def ensure_onnx(name: str, cache_dir: Path, weights: Path | str | None = None) -> Path:
    """Path of the cached ONNX export of backbone ``name``, exporting it first if needed."""
    backbone = backbones.get_backbone(name)
    source = backbones.resolve_weights(name, weights)
    models = Path(cache_dir) / "models"
    path = models / f"{name}-{cache_key(name, source)}.onnx"
    with file_lock(models / ".export.lock"):
        if not path.exists():
            logger.info("exporting %s to %s (one time)", name, path)
            module = backbones.build(name, source)
            export_module(module, path, (1, 3, backbone.spec.crop, backbone.spec.crop))
        spec_path = path.with_suffix(".json")
        if not spec_path.exists():
            atomic_write_bytes(spec_path, json.dumps(backbone.spec.to_dict(), indent=2).encode())
    return path
