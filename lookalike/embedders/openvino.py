"""OpenVINO embedder: the same ONNX files and preprocessing as :class:`OnnxEmbedder`, run by
OpenVINO's CPU plugin, which uses AVX-512 VNNI for int8 and AVX-512 BF16 for bf16 where the CPU
has them (ONNX Runtime's fp32 kernels use neither)."""

from __future__ import annotations

import threading

import numpy as np

from ..errors import ConfigError
from .onnx import OnnxEmbedder

# OpenVINO's name for each precision hint. An int8 (QDQ) file runs its int8 parts in int8 and the
# rest in f32; without an explicit f32 hint the plugin picks bf16 on CPUs that have it.
PRECISION_HINTS = {"fp32": "f32", "int8": "f32", "bf16": "bf16"}


def _openvino():
    try:
        import openvino
    except ImportError:
        raise ConfigError("the openvino engine needs OpenVINO: pip install 'lookalike[fast]' "
                          "(or use --engine onnxruntime)") from None
    return openvino


class OpenVinoEmbedder(OnnxEmbedder):
    """:class:`OnnxEmbedder` with OpenVINO running the backbone (a head still runs in ONNX Runtime).

    ``bulk`` compiles for throughput (several streams, a batch split across them), otherwise for
    latency (one stream over all cores). ``precision`` ``bf16`` runs the fp32 file with bf16
    arithmetic; ``int8`` expects a quantized file.
    """

    engine = "openvino"

    def _open(self, threads: int, bulk: bool):
        ov = _openvino()
        if self.precision not in PRECISION_HINTS:
            raise ConfigError(f"OpenVINO runs fp32, int8 or bf16, not {self.precision}")
        if not self.model_path.is_file():
            raise ConfigError(f"ONNX model {self.model_path} does not exist")
        config = {"PERFORMANCE_HINT": "THROUGHPUT" if bulk else "LATENCY",
                  "INFERENCE_PRECISION_HINT": PRECISION_HINTS[self.precision]}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        try:
            model = core.read_model(str(self.model_path))
            if len(model.inputs) != 1:
                raise ConfigError(f"{self.model_path}: expected one input (n, 3, H, W), found {len(model.inputs)}")
            compiled = core.compile_model(model, "CPU", config)
        except ConfigError:
            raise
        except Exception as exc:  # OpenVINO raises RuntimeError for any bad file or setting
            raise ConfigError(f"OpenVINO cannot load {self.model_path}: {str(exc).splitlines()[0]}") from None
        if self.precision == "bf16" and compiled.get_property("INFERENCE_PRECISION_HINT") != ov.Type.bf16:
            raise ConfigError("this CPU has no bf16 support (AVX-512 BF16 or AMX); use --precision fp32 or int8")
        self._compiled = compiled
        return _Runner(ov, compiled)


class _Runner:
    """Runs a batch on a compiled model: split over its infer requests (one per stream), which run
    at once. Calls are serialised: the requests are shared and one call already fills the cores."""

    def __init__(self, ov, compiled):
        self.jobs = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self._queue = ov.AsyncInferQueue(compiled, self.jobs)
        self._lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        parts = np.array_split(batch, min(self.jobs, len(batch)))
        results: list[np.ndarray | None] = [None] * len(parts)

        def done(request, i):
            results[i] = request.get_output_tensor(0).data.copy()

        with self._lock:
            self._queue.set_callback(done)
            for i, part in enumerate(parts):
                self._queue.start_async({0: np.ascontiguousarray(part)}, userdata=i)
            self._queue.wait_all()
        return np.concatenate(results)
