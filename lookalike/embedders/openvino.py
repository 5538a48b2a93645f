"""OpenVINO embedder: the same ONNX files and pixels as :class:`OnnxEmbedder` (scaled inside the graph), run by
OpenVINO's CPU plugin, which uses AVX-512 VNNI for int8 and AVX-512 BF16 for bf16 where the CPU
has them (ONNX Runtime's fp32 kernels use neither)."""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image

from ..errors import ConfigError
from .onnx import OnnxEmbedder
from .preprocess import crop_pixels, pixel_scaling

# OpenVINO's name for each precision hint. An int8 (QDQ) file runs its int8 parts in int8 and the
# rest (the first convolution, kept out of int8) in f32, or in bf16 for int8-bf16; without an
# explicit f32 hint the plugin picks bf16 on CPUs that have it.
# int8-w7 is another int8 file (weights in half the range, for CPUs without VNNI), also in f32 around it.
PRECISION_HINTS = {"fp32": "f32", "int8": "f32", "bf16": "bf16", "int8-bf16": "bf16", "int8-w7": "f32"}


def _openvino():
    try:
        import openvino
    except ImportError:
        raise ConfigError("the openvino engine needs OpenVINO: pip install 'lookalike[fast]' "
                          "(or use --engine onnxruntime)") from None
    return openvino


class OpenVinoEmbedder(OnnxEmbedder):
    """:class:`OnnxEmbedder` with OpenVINO running the backbone (a head still runs in ONNX Runtime).

    ``bulk`` compiles for throughput (several streams, each running one or two images at a time),
    otherwise for latency (one stream over all cores). ``precision`` ``bf16`` runs the fp32 file with bf16
    arithmetic; ``int8`` expects a quantized file, ``int8-bf16`` too (its float part in bf16).
    """

    engine = "openvino"
    # The model takes Pillow's pixels as they are, (crop, crop, 3) uint8, and scales them itself
    # (``_pixels_in``): preparing skips the float pass (0.17 ms a demo image) and hands the model a
    # quarter of the bytes (811 -> 203 KB an image, less for the caches the model shares). Demo
    # ingest 1.091x in 14 paired fresh-process runs (Zen 4, int8), the model alone 1.007x. The
    # vectors are not bit-identical to scaling in numpy (the first convolution runs another
    # kernel on the NHWC input): cosine >= 0.9979, P@K within 0.4 points (docs/BENCHMARKS.md).
    # So the fingerprint says so (``+u8``, e.g. ``48a3774367c4+u8@openvino-int8``): an index made
    # before warns.
    prepared_dtype = np.uint8
    input_mark = "+u8"

    @property
    def prepared_shape(self) -> tuple[int, int, int]:
        return (self.spec.crop, self.spec.crop, 3)

    def prepare(self, image: Image.Image, out: np.ndarray | None = None) -> np.ndarray:
        """One RGB (or grey ``L``) image → its ``(crop, crop, 3) uint8`` pixels, resized and
        cropped as :func:`~lookalike.embedders.preprocess.to_array` does (:func:`crop_pixels`), into
        ``out`` if given; safe to call from worker threads."""
        pixels = crop_pixels(image, self.spec)  # a grey plane, resized once, is copied into 3 channels
        shape = self.prepared_shape
        if out is None or out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
            out = np.empty(shape, np.uint8)
        out[...] = pixels[..., None] if pixels.ndim == 2 else pixels
        return out

    def _pixels_in(self, ov, model):
        """``model`` taking ``(n, crop, crop, 3) uint8`` pixels: OpenVINO's preprocessing converts
        them to float, applies the spec's ``x * scale + offset`` (the same float32 constants as
        :func:`~lookalike.embedders.preprocess.scale_pixels`) and transposes to the model's NCHW."""
        from openvino.preprocess import PrePostProcessor

        scale, offset = (np.asarray(v, np.float32).reshape(1, 1, 1, 3) for v in pixel_scaling(self.spec))
        ops = ov.opset13

        def scale_pixels(node):
            return ops.add(ops.multiply(node, ops.constant(scale)), ops.constant(offset)).output(0)

        ppp = PrePostProcessor(model)
        ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        ppp.input().preprocess().convert_element_type(ov.Type.f32).custom(scale_pixels)
        return ppp.build()

    def _open(self, threads: int, bulk: bool):
        ov = _openvino()
        if self.precision not in PRECISION_HINTS:
            raise ConfigError(f"OpenVINO runs {', '.join(PRECISION_HINTS)}, not {self.precision}")
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
            # One image per request (two in the throughput session on AMX: images_per_request), of
            # one fixed shape. With a dynamic batch the CPU plugin prepares its kernels again for
            # every new shape it meets: 0.1-0.2 s each time a batch splits differently (the first
            # batch, the last partial one), a fifth of a 187-image ingest; and a static shape runs a
            # single image in 2.6 ms instead of 3.4.
            # Streams (THROUGHPUT) run several requests at once, so batches keep their speed.
            # Per-image requests also beat 8-image ones (a batch's share of a stream) in fresh-process
            # demo ingests on a VNNI CPU: 256 vs 246 img/s, where the dynamic batch ran 190
            # (docs/BENCHMARKS.md).
            model.reshape([images_per_request(bulk), 3, self.spec.crop, self.spec.crop])
            compiled = core.compile_model(self._pixels_in(ov, model), "CPU", config)
        except ConfigError:
            raise
        except Exception as exc:  # OpenVINO raises RuntimeError for any bad file or setting
            raise ConfigError(f"OpenVINO cannot load {self.model_path}: {str(exc).splitlines()[0]}") from None
        if PRECISION_HINTS[self.precision] == "bf16" \
                and compiled.get_property("INFERENCE_PRECISION_HINT") != ov.Type.bf16:
            raise ConfigError(f"this CPU has no bf16 support (AVX-512 BF16 or AMX) for {self.precision}; "
                              "use --precision fp32 or int8")
        self._compiled = compiled
        return _Runner(compiled, REQUESTS_PER_STREAM if bulk else 1)


def images_per_request(bulk: bool, cpuinfo: str | None = None) -> int:
    """Images in one infer request: 2 for the throughput session on an AMX CPU, else 1.

    AMX tiles take 16 rows, so the late 1x1 convolutions (9 x 9 = 81 positions an image) fill them
    better with two images: 16 alternating rounds of 128 images on a Sapphire Rapids VM, median
    213 vs 201 img/s (through the embedder, paired 1.07; fresh-process demo ingests 1.05-1.11).
    Without AMX (an AMD Zen 4 VM, VNNI only) one image a request was the fastest (474 img/s,
    against 2, 4 or 8). The latency session stays at one: a query is one image.
    """
    from .choice import cpu_flags, read_cpuinfo

    return 2 if bulk and "amx_int8" in cpu_flags(read_cpuinfo() if cpuinfo is None else cpuinfo) else 1


# Infer requests kept in flight per stream in the throughput session. With one, a stream whose
# request is done idles until Python collects it and starts the next, and at the end of a batch
# the faster stream idles while the slower finishes its share; with more, the plugin's streams
# take the queued requests as they free up. Model alone, batches of 16, 15-20 alternating rounds
# on the Sapphire Rapids VM: 2 a stream 1.03-1.06x the throughput of 1 (3: 1.07x, 4: 1.07x), the
# cores' busy share 0.85-0.90 -> 0.90-0.93; fresh-process demo ingests (10 alternating rounds),
# where the preparing threads already fill most of those gaps: 2 1.025x, 3 1.013x. Vectors
# bit-identical (the same requests, in order).
REQUESTS_PER_STREAM = 2


class _Runner:
    """Runs a batch on a model compiled for ``per`` images: the batch's ``i``-th slice of ``per``
    images goes to infer request ``i % jobs`` (``queued`` requests per stream, started at once;
    each stream runs them as it frees up); an odd tail is padded with copies of its last image,
    whose extra vectors are dropped. Calls are serialised: the requests are shared and one call
    already fills the cores."""

    def __init__(self, compiled, queued: int = 1):
        self.jobs = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))) * max(1, queued)
        self.per = int(compiled.input(0).shape[0])
        self._requests = [compiled.create_infer_request() for _ in range(self.jobs)]
        self._lock = threading.Lock()
        # Each request's first run allocates its buffers: done here, not in the first batch.
        port = compiled.input(0)
        self(np.zeros((self.jobs * self.per, *tuple(port.shape)[1:]), port.get_element_type().to_dtype()))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        n, jobs, per = len(batch), self.jobs, self.per
        slices = -(-n // per)
        if jobs == 1 and slices == 1:
            # A query: infer() runs it without the hand-over to the stream's thread and back
            # (POST /search 0.976-0.987x in paired servers, Zen 4; the same vectors).
            with self._lock:
                request = self._requests[0]
                request.infer({0: self._padded(batch)}, share_inputs=True)
                return request.get_output_tensor(0).data[:n].copy()
        results: list[np.ndarray] = []
        reading: list[np.ndarray | None] = [None] * jobs  # what each running request reads in place
        with self._lock:
            # Python callbacks (AsyncInferQueue) would take the GIL from the preparing threads once
            # per image; wait() instead releases it until that request's images are done.
            for i in range(slices + jobs):
                request = self._requests[i % jobs]
                if i >= jobs:
                    request.wait()
                    results.append(request.get_output_tensor(0).data.copy())
                if i < slices:
                    # The request reads the batch's memory instead of a copy (model alone 1.02x,
                    # paired); every request is waited for before this call returns the batch.
                    reading[i % jobs] = part = self._padded(batch[i * per:(i + 1) * per])
                    request.start_async({0: part}, share_inputs=True)
        return np.concatenate(results)[:n]

    def _padded(self, part: np.ndarray) -> np.ndarray:
        """``part`` as one request's contiguous input: a short tail padded with its last image."""
        if len(part) < self.per:
            part = np.concatenate([part, np.repeat(part[-1:], self.per - len(part), axis=0)])
        return np.ascontiguousarray(part)
