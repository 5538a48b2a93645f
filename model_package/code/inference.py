"""SageMaker inference entry point: image in, L2-normalised embedding out.

The four functions SageMaker's inference toolkit calls (``model_fn``, ``input_fn``,
``predict_fn``, ``output_fn``) delegate to the same lookalike code the local CLI and API
use: :func:`lookalike.imaging.decode_image` for decoding and limits and
:class:`lookalike.embedders.onnx.OnnxEmbedder` for preprocessing and inference. The build
copies those modules next to this file (``code/lookalike/``).

Request:  raw image bytes (``image/jpeg``, ``image/png``, ... or ``application/octet-stream``),
          or ``application/json`` ``{"image": "<base64>"}`` / ``{"images": ["<base64>", ...]}``.
Response: ``application/json`` ``{"vectors": [[float, ...]], "dim": d, "model": "<name>",
          "engine": "onnxruntime", "precision": "fp32" | "int8"}`` (how the vectors were made: an
          index never mixes precisions).

Errors leave as exceptions carrying ``status_code`` (415 unsupported content type, 400 bad
image or JSON, 413 too large), which the toolkit turns into the HTTP status of the answer.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from lookalike import limits
from lookalike.embedders.onnx import OnnxEmbedder
from lookalike.embedders.preprocess import PreprocessSpec
from lookalike.errors import InvalidInput, LookalikeError, PayloadTooLarge, UnsupportedMediaType
from lookalike.imaging import decode_base64, decode_image, image_pixels

logger = logging.getLogger(__name__)

MANIFEST = "lookalike-model.json"
JSON = "application/json"
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/gif", "image/tiff",
               "application/octet-stream")
MAX_BATCH = limits.MAX_IMAGES_PER_REQUEST
# The pixel limit the archive was built with (its manifest, written from the same Settings as
# the local API and the Lambda); model_fn reads it. The endpoint's own request cap (6 MB) is
# enforced by SageMaker before this code runs.
LIMITS = {"max_image_pixels": limits.MAX_IMAGE_PIXELS}

try:  # inside the SageMaker containers: the toolkit maps this base class to the HTTP status
    from sagemaker_inference.errors import BaseInferenceToolkitError as _StatusError
except ImportError:  # elsewhere (unit tests load this file without the toolkit): same attributes
    class _StatusError(Exception):
        def __init__(self, status_code: int, message: str, phrase: str):
            super().__init__(status_code, message, phrase)
            self.status_code, self.message, self.phrase = status_code, message, phrase


class InferenceError(_StatusError):
    """A lookalike error as the toolkit wants it: status code, JSON body, one-line reason."""

    def __init__(self, error: LookalikeError):
        body = json.dumps({"error": {"code": error.code, "message": error.message}})
        super().__init__(error.status, body, error.message.replace("\r", " ").replace("\n", " "))
        self.code = error.code


def model_fn(model_dir: str) -> OnnxEmbedder:
    """Load the ONNX model (and optional head) named in ``lookalike-model.json``."""
    root = Path(model_dir)
    manifest = json.loads((root / MANIFEST).read_text())
    LIMITS.update(manifest.get("limits") or {})
    spec = PreprocessSpec.from_file(root / manifest["spec"])
    head = root / manifest["head"] if manifest.get("head") else None
    # An archive built before precisions were recorded holds the fp32 model.
    embedder = OnnxEmbedder(root / manifest["model"], spec, name=manifest["name"], head_path=head,
                            batch_size=int(manifest.get("batch_size", 16)), precision=manifest.get("precision", "fp32"))
    logger.info("loaded %s (%d-d, %s) from %s", embedder.name, embedder.dim, embedder.precision, root)
    return embedder


def _decode_raw(body, content_type: str) -> list:
    return [decode_image(_as_bytes(body), max_pixels=LIMITS["max_image_pixels"])]


def _decode_json(body, content_type: str) -> list:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("Request body is not valid JSON.") from None
    if not isinstance(payload, dict) or ("image" in payload) == ("images" in payload):
        raise InvalidInput('JSON body must be {"image": "<base64>"} or {"images": ["<base64>", ...]}.')
    items = [payload["image"]] if "image" in payload else payload["images"]
    if not isinstance(items, list):
        raise InvalidInput("'images' must be a list of base64 strings.")
    if len(items) > MAX_BATCH:
        raise PayloadTooLarge(f"At most {MAX_BATCH} images per request, got {len(items)}.")
    data = [decode_base64(item) for item in items]
    # A few KB of base64 can hold 40 MP each: a batch is refused before decoding when its images
    # together exceed the budget a local server decodes at once (16 such images took a worker to 3 GB).
    total = sum(image_pixels(d) for d in data)
    if len(data) > 1 and total > limits.DECODE_BUDGET_PIXELS:
        raise PayloadTooLarge(f"The images of one request hold {total} pixels; at most {limits.DECODE_BUDGET_PIXELS} "
                              "in a batch: send fewer or smaller images per request.")
    return [decode_image(d, max_pixels=LIMITS["max_image_pixels"]) for d in data]


DECODERS = {JSON: _decode_json, **{media: _decode_raw for media in IMAGE_TYPES}}


def _as_bytes(body) -> bytes:
    if isinstance(body, str):  # the toolkit decodes UTF-8 types to str; raw images stay bytes
        return body.encode("latin-1", errors="strict")
    return bytes(body)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def input_fn(request_body, request_content_type: str) -> list:
    """Request body → list of RGB ``PIL.Image`` (one for a raw image, n for a JSON batch)."""
    media = media_type(request_content_type)
    decoder = DECODERS.get(media)  # looked up outside the try: a decoder bug is not "unsupported"
    if decoder is None:
        raise InferenceError(UnsupportedMediaType(
            f"Content type {media or 'nothing'!r} is not supported; send image bytes "
            f"({', '.join(IMAGE_TYPES)}) or {JSON} with 'image' or 'images'."))
    try:
        return decoder(request_body, media)
    except LookalikeError as exc:
        raise InferenceError(exc) from None


def predict_fn(images: list, model: OnnxEmbedder) -> dict:
    """Images → ``{"vectors": (n, dim) float32, "dim", "model", "engine", "precision"}``."""
    return {"vectors": model.encode(images), "dim": model.dim, "model": model.name, "engine": model.engine,
            "precision": model.precision}


def output_fn(prediction: dict, accept: str | None):
    """Serialise as JSON (the only response type); float32 values survive the round trip."""
    media = media_type(accept)
    if media not in ("", "*/*", JSON):
        raise InferenceError(UnsupportedMediaType(f"Accept {media!r} is not supported; use {JSON}."))
    body = {"vectors": prediction["vectors"].tolist(),
            **{key: prediction[key] for key in ("dim", "model", "engine", "precision")}}
    return json.dumps(body, separators=(",", ":")), JSON
