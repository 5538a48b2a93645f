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

    ``bulk`` compiles for throughput (several streams, each running one image at a time),
    otherwise for latency (one stream over all cores). ``precision`` ``bf16`` runs the fp32 file with bf16
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
            # One image per request, of one fixed shape. With a dynamic batch the CPU plugin
            # prepares its kernels again for every new shape it meets: 0.1-0.2 s each time a
            # batch splits differently (the first batch, the last partial one), a fifth of a
            # 187-image ingest; and a static shape runs a single image in 2.6 ms instead of 3.4.
            # Streams (THROUGHPUT) run several requests at once, so batches keep their speed.
            # Per-image requests also beat 8-image ones (a batch's share of a stream) in fresh-process
            # demo ingests: 256 vs 246 img/s, where the dynamic batch ran 190 (docs/BENCHMARKS.md).
            model.reshape([1, 3, self.spec.crop, self.spec.crop])
            compiled = core.compile_model(model, "CPU", config)
        except ConfigError:
            raise
        except Exception as exc:  # OpenVINO raises RuntimeError for any bad file or setting
            raise ConfigError(f"OpenVINO cannot load {self.model_path}: {str(exc).splitlines()[0]}") from None
        if self.precision == "bf16" and compiled.get_property("INFERENCE_PRECISION_HINT") != ov.Type.bf16:
            raise ConfigError("this CPU has no bf16 support (AVX-512 BF16 or AMX); use --precision fp32 or int8")
        self._compiled = compiled
        return _Runner(compiled)


class _Runner:
    """Runs a batch on a model compiled for one image: image ``i`` goes to infer request
    ``i % jobs`` (one request per stream; the requests run at once). Calls are serialised: the
    requests are shared and one call already fills the cores."""

    def __init__(self, compiled):
        self.jobs = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self._requests = [compiled.create_infer_request() for _ in range(self.jobs)]
        self._lock = threading.Lock()
        # Each request's first run allocates its buffers: done here, not in the first batch.
        self(np.zeros((self.jobs, *tuple(compiled.input(0).shape)[1:]), np.float32))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        n, jobs = len(batch), self.jobs
        results: list[np.ndarray] = []
        with self._lock:
            # Python callbacks (AsyncInferQueue) would take the GIL from the preparing threads once
            # per image; wait() instead releases it until that request's image is done.
            for i in range(n + jobs):
                request = self._requests[i % jobs]
                if i >= jobs:
                    request.wait()
                    results.append(request.get_output_tensor(0).data.copy())
                if i < n:
                    request.start_async({0: np.ascontiguousarray(batch[i:i + 1])})
        return np.concatenate(results[:n])
