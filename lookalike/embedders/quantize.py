"""Static int8 quantization of an fp32 ONNX backbone, done once and cached.

ONNX Runtime's tooling (``onnxruntime.quantization``) writes a QDQ model: uint8 activations,
per-channel int8 weights, ranges calibrated (MinMax) on the images bundled in
``calibration/`` (see its README: none of them is in an evaluation set). The first
convolution stays fp32: it sees the raw pixels, whose quantization costs the most accuracy
for the least time. The result runs under ONNX Runtime (the SageMaker archive) and OpenVINO.

``int8-w7`` (for x86 CPUs without VNNI) is another file, made by NNCF (:func:`quantize_half_range`):
the regular convolutions' weights in half the int8 range, so the u8 x s8 products that AVX2 and
pre-VNNI AVX-512 add in pairs into 16 bits cannot saturate, and the shift that costs in each layer's
mean output corrected (NNCF's fast bias correction). It runs under OpenVINO only.

The cached file is ``<cache>/models/<fp32 stem>-int8-<key>.onnx`` (``-int8w7-`` for the half-range
one; + its preprocessing ``.json``), ``key`` hashing the fp32 file, the calibration images and this
module's code;
written atomically under a file lock like :func:`lookalike.embedders.export.ensure_onnx`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..fsutil import atomic_write_bytes, file_lock
from ..imaging import decode_image
from ..limits import MAX_IMAGE_PIXELS
from .preprocess import PreprocessSpec, to_array

logger = logging.getLogger(__name__)

CALIBRATION_DIR = Path(__file__).resolve().parent / "calibration"
CALIBRATION_SUFFIXES = (".jpg", ".png")
CALIBRATION_BATCH = 10  # images per calibration run: the augmented model keeps every tensor
# How activation ranges are calibrated. MinMax held the quality guard; ONNX Runtime's histogram
# methods (percentile, entropy) keep every tensor of every calibration batch in memory: percentile
# over these 300 images was killed at 24 GB.
METHOD = "minmax"


def calibration_files(folder: Path = CALIBRATION_DIR) -> list[Path]:
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in CALIBRATION_SUFFIXES)
    if not files:
        raise ConfigError(f"no calibration images in {folder}; reinstall lookalike (they are package data)")
    return files


def calibration_digest(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def cache_key(fp32_path: Path, files: list[Path], method: str = METHOD, *, half_range: bool = False) -> str:
    """16 hex chars identifying (fp32 model bytes, calibration images and method, the code that
    quantizes)."""
    digest = hashlib.sha256(hashlib.sha256(Path(fp32_path).read_bytes()).digest())
    digest.update(calibration_digest(files).encode() + method.encode())
    for code in (calibration_batches, first_conv, quantize_half_range if half_range else quantize_file):
        digest.update(inspect.getsource(code).encode())
    return digest.hexdigest()[:16]


def calibration_batches(files: list[Path], spec: PreprocessSpec) -> list[np.ndarray]:
    """The calibration images preprocessed as the embedder does, in ``(n, 3, crop, crop)`` batches."""
    arrays = [to_array(decode_image(p.read_bytes(), max_pixels=MAX_IMAGE_PIXELS), spec) for p in files]
    return [np.stack(arrays[i:i + CALIBRATION_BATCH]) for i in range(0, len(arrays), CALIBRATION_BATCH)]


def _tooling():
    try:
        import onnx  # noqa: F401  (the quantization tooling needs it)
        from onnxruntime import quantization
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise ConfigError(f"int8 quantization needs the onnx package ({exc.name} is missing): "
                          "pip install 'lookalike[fast]'") from None
    return quantization, quant_pre_process


def first_conv(path: Path) -> str:
    """Name of the first Conv node (kept fp32)."""
    import onnx

    for node in onnx.load(str(path), load_external_data=False).graph.node:
        if node.op_type == "Conv":
            return node.name
    raise ConfigError(f"{path} has no Conv node to keep in fp32; int8 is for the CNN backbones")


def quantize_file(fp32_path: Path, out: Path, spec: PreprocessSpec, files: list[Path], method: str = METHOD) -> None:
    """Write the int8 QDQ model of ``fp32_path`` to ``out`` (atomically)."""
    quantization, quant_pre_process = _tooling()
    methods = {"minmax": quantization.CalibrationMethod.MinMax, "entropy": quantization.CalibrationMethod.Entropy,
               "percentile": quantization.CalibrationMethod.Percentile}
    batches = calibration_batches(files, spec)

    class Reader(quantization.CalibrationDataReader):
        def __init__(self, name: str):
            self._items = iter({name: b} for b in batches)

        def get_next(self):
            return next(self._items, None)

    with tempfile.TemporaryDirectory(prefix="lookalike-int8-") as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        # Shape inference and graph fusions first, as ONNX Runtime's docs advise: it fuses the
        # BatchNorms into the convolutions so each conv gets one quantized weight.
        quant_pre_process(str(fp32_path), str(prepared))
        import onnx

        input_name = onnx.load(str(prepared), load_external_data=False).graph.input[0].name
        quantization.quantize_static(
            str(prepared), str(quantized), Reader(input_name), quant_format=quantization.QuantFormat.QDQ,
            activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
            per_channel=True, calibrate_method=methods[method],
            nodes_to_exclude=[first_conv(prepared)])
        atomic_write_bytes(out, quantized.read_bytes())


def _nncf():
    try:
        import nncf
        import onnx  # noqa: F401  (NNCF's ONNX backend)
    except ImportError as exc:
        raise ConfigError(f"int8-w7 quantization needs NNCF ({exc.name} is missing): "
                          "pip install 'lookalike[fast]'") from None
    return nncf


def quantize_half_range(fp32_path: Path, out: Path, spec: PreprocessSpec, files: list[Path]) -> None:
    """Write the int8-w7 QDQ model of ``fp32_path`` to ``out`` (atomically), quantized by NNCF.

    ONNX Runtime's own ``reduce_range`` (7-bit weights, no bias correction) fell to a min cosine of
    0.78 to fp32 and lost 1.6-2.1 points of demo P@1; NNCF with ``OverflowFix.ENABLE`` and its fast
    bias correction held the guard on the AVX2 CPU (docs/BENCHMARKS.md). NNCF leaves the depthwise
    convolutions in the full range: their products are not summed in pairs."""
    nncf = _nncf()
    import onnx
    nncf.set_log_level(logging.WARNING)  # its INFO lines list every node it leaves alone
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    # One image an item: NNCF's statistics (and its subset_size) count items.
    items = [batch[i:i + 1] for batch in calibration_batches(files, spec) for i in range(len(batch))]
    _, quant_pre_process = _tooling()
    with tempfile.TemporaryDirectory(prefix="lookalike-int8w7-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared))  # BatchNorms fused, as for int8
        model = onnx.load(str(prepared))
        name = model.graph.input[0].name
        quantized = nncf.quantize(
            model, nncf.Dataset(items, lambda item: {name: item}), subset_size=len(items),
            target_device=nncf.TargetDevice.CPU, fast_bias_correction=True,
            ignored_scope=nncf.IgnoredScope(names=[first_conv(prepared)]),
            advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE))
        atomic_write_bytes(out, quantized.SerializeToString())


def ensure_int8(fp32_path: Path, cache_dir: Path, spec: PreprocessSpec, *,
                calibration: Path = CALIBRATION_DIR, method: str = METHOD, half_range: bool = False) -> Path:
    """Path of the cached int8 model of ``fp32_path`` (``half_range``: the int8-w7 one), quantizing
    it first if needed (1-3 minutes)."""
    files = calibration_files(calibration)
    fp32_path = Path(fp32_path)
    models = Path(cache_dir) / "models"
    kind = "int8w7" if half_range else "int8"
    path = models / f"{fp32_path.stem}-{kind}-{cache_key(fp32_path, files, method, half_range=half_range)}.onnx"
    with file_lock(models / ".export.lock"):
        if not path.exists():
            logger.info("quantizing %s to %s at %s (one time)", fp32_path.name, kind, path)
            if half_range:
                quantize_half_range(fp32_path, path, spec, files)
            else:
                quantize_file(fp32_path, path, spec, files, method)
        spec_path = path.with_suffix(".json")
        if not spec_path.exists():
            atomic_write_bytes(spec_path, json.dumps(spec.to_dict(), indent=2).encode())
    return path
