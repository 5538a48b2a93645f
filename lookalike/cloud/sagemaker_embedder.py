"""An embedder whose model runs behind a SageMaker endpoint (the packaged ``inference.py``).

Images travel losslessly so a vector equals the one the local embedder makes for the same
file: :meth:`SageMakerEmbedder.encode_bytes` (and :meth:`~SageMakerEmbedder.encode` given
:class:`EncodedImage`) forwards the original, already validated file bytes, which the endpoint
decodes with the same :func:`lookalike.imaging.decode_image`; decoded ``PIL`` images are sent
as PNG. The Lambda uses the first path, batch indexing (``lookalike cloud-index``) the second.

Vectors come back as a ``(n, dim) float32`` numpy array where numpy is installed; the Lambda
package has no numpy and gets a list of ``n`` lists of ``dim`` floats (what the OpenSearch
client sends anyway).

Errors the endpoint answers with become the error the local API gives for the same image
(:func:`model_error`); nothing of the container's answer but lookalike's own JSON error reaches
a client, never its traceback.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import random
import time
from collections.abc import Sequence
from typing import Any

from .. import limits
from ..errors import BackendUnavailable, InvalidInput, LookalikeError, PayloadTooLarge, UpstreamError

logger = logging.getLogger(__name__)

# SageMaker rejects real-time requests above 6 MB; leave room for JSON and base64 overhead.
MAX_PAYLOAD = 5_800_000
RETRYABLE = {"ThrottlingException", "Throttling", "TooManyRequestsException", "ModelNotReadyException",
             "ServiceUnavailable", "InternalFailure", "InternalDependencyException"}
# lookalike's own errors the container may answer, by status: passed on as they are, since the
# local API answers the same status and code for the same bytes (inference.py decodes with the
# same code). Anything else from the model (415: the embedder's content type or Accept; TorchServe's
# own errors; 5xx) is a fault between this embedder and the endpoint, never the client's: 502, or
# 503 while no worker is free.
IMAGE_ERRORS = {400: (InvalidInput, {"invalid_image", "invalid_input"}),
                413: (PayloadTooLarge, {"image_too_large", "payload_too_large"})}


class EncodedImage:
    """Original image file bytes that already passed :func:`lookalike.imaging.decode_image`."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = bytes(data)


def _png(image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=3)
    return out.getvalue()


def _as_vectors(rows: list[list[float]], dim: int):
    try:
        import numpy as np
    except ImportError:  # the Lambda package
        return rows
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), dim)


class SageMakerEmbedder:
    """``encode(images) -> (n, dim) float32`` computed by a SageMaker endpoint.

    ``name`` and ``dim`` are asked from the endpoint on first use (an empty batch) unless given.
    Throttling and transient endpoint errors are retried with exponential backoff and jitter
    (a read timeout is not: the model may still be at work); what remains maps to
    :class:`~lookalike.errors.BackendUnavailable` (503: unreachable, missing, overloaded or too
    slow endpoint), the image's own error (:func:`model_error`: 400, 413) or
    :class:`~lookalike.errors.UpstreamError` (502: the model failed or answered nonsense).
    """

    def __init__(self, endpoint: str, client, *, name: str | None = None, dim: int | None = None,
                 engine: str | None = None, precision: str | None = None,
                 max_attempts: int = 4, backoff: float = 0.1, max_payload: int = MAX_PAYLOAD):
        if not endpoint:
            raise BackendUnavailable("No SageMaker endpoint is configured (LOOKALIKE_SAGEMAKER_ENDPOINT).")
        self.endpoint, self.client = endpoint, client
        self.max_attempts, self.backoff, self.max_payload = max(1, max_attempts), backoff, max_payload
        self._name, self._dim = name, dim
        # How the endpoint makes its vectors (inference.py answers them; None until it has, or for an
        # archive built before they were recorded). Given ones are checked against every answer.
        self.engine, self.precision = engine, precision

    @classmethod
    def from_settings(cls, settings, client=None, **kwargs: Any) -> SageMakerEmbedder:
        from .aws import sagemaker_runtime_client

        return cls(settings.sagemaker_endpoint, client or sagemaker_runtime_client(settings), **kwargs)

    # ----- protocol ----------------------------------------------------------------------
    @property
    def name(self) -> str:
        if self._name is None:
            self._describe()
        return self._name

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._describe()
        return self._dim

    def encode(self, images: Sequence[Any]):
        """RGB ``PIL`` images (sent as PNG) or :class:`EncodedImage` → ``(n, dim) float32``."""
        payloads = [im.data if isinstance(im, EncodedImage) else _png(im) for im in images]
        return self.encode_bytes(payloads)

    def encode_bytes(self, images: Sequence[bytes]):
        """Image file bytes → ``(n, dim) float32``; one request per image or per batch that fits."""
        rows: list[list[float]] = []
        for batch in self._batches(images):
            if len(batch) == 1:
                answer = self._invoke(batch[0], "application/octet-stream")
            else:
                body = json.dumps({"images": [base64.b64encode(b).decode() for b in batch]}).encode()
                answer = self._invoke(body, "application/json")
            rows.extend(self._check(answer, len(batch)))
        return _as_vectors(rows, self.dim)

    # ----- internals ---------------------------------------------------------------------
    def _batches(self, images: Sequence[bytes]):
        """Requests that fit the endpoint: at most ``max_payload`` bytes of JSON, MAX_IMAGES_PER_REQUEST
        images and DECODE_BUDGET_PIXELS pixels (from the headers). The container decodes a whole batch
        at once: 16 flat 40 MP PNGs are 2.8 MB of JSON but took its worker to 3 GB."""
        from ..imaging import image_pixels

        batch: list[bytes] = []
        size = pixels = 0
        for data in images:
            encoded, area = (len(data) + 2) // 3 * 4 + 4, image_pixels(data)
            if len(data) > self.max_payload:
                raise PayloadTooLarge(f"Image of {len(data)} bytes is larger than the model endpoint accepts "
                                      f"({self.max_payload} bytes).")
            if batch and (size + encoded > self.max_payload or len(batch) == limits.MAX_IMAGES_PER_REQUEST
                          or pixels + area > limits.DECODE_BUDGET_PIXELS):
                yield batch
                batch, size, pixels = [], 0, 0
            batch.append(data)
            size, pixels = size + encoded, pixels + area
        if batch:
            yield batch

    def _describe(self) -> None:
        answer = self._invoke(b'{"images": []}', "application/json")
        try:
            self._name, self._dim = str(answer["model"]), int(answer["dim"])
        except (KeyError, TypeError, ValueError):
            raise UpstreamError(f"SageMaker endpoint {self.endpoint!r} did not describe its model.") from None
        self._check_run(answer)

    def _check_run(self, answer: dict) -> None:
        """Record the answer's engine/precision, or refuse one that differs from the expected."""
        for key in ("engine", "precision"):
            value, expected = answer.get(key), getattr(self, key)
            if value is not None and expected is not None and value != expected:
                raise UpstreamError(f"SageMaker endpoint {self.endpoint!r} runs {key} {value!r} but the index's "
                                    f"vectors are {expected!r}; deploy the archive the index was built with.")
            if value is not None:
                setattr(self, key, str(value))

    def _check(self, answer: dict, n: int) -> list[list[float]]:
        try:
            rows, dim, model = answer["vectors"], int(answer["dim"]), answer["model"]
        except (KeyError, TypeError, ValueError):
            raise UpstreamError(f"SageMaker endpoint {self.endpoint!r} answered without vectors.") from None
        if self._dim is None:
            self._name, self._dim = str(model), dim
        if dim != self._dim or model != self._name or len(rows) != n or any(len(r) != dim for r in rows):
            raise UpstreamError(f"SageMaker endpoint {self.endpoint!r} answered {len(rows)} vectors of model "
                                f"{model!r} ({dim}-d); expected {n} of {self._name!r} ({self._dim}-d).")
        self._check_run(answer)
        return rows

    def _invoke(self, body: bytes, content_type: str) -> dict:
        from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError, ReadTimeoutError

        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self.client.invoke_endpoint(EndpointName=self.endpoint, Body=body,
                                                       ContentType=content_type, Accept="application/json")
                raw = response["Body"].read()
                break
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if (code in RETRYABLE or status in (429, 503)) and attempt < self.max_attempts:
                    self._sleep(attempt, code)
                    continue
                raise self._map(exc, code, status) from None
            except ReadTimeoutError:  # the model may still be working on it: no second request on top
                raise BackendUnavailable(f"SageMaker endpoint {self.endpoint!r} did not answer in time.") from None
            except (ConnectionError, HTTPClientError) as exc:
                if attempt < self.max_attempts:
                    self._sleep(attempt, type(exc).__name__)
                    continue
                logger.warning("SageMaker %s unreachable: %s", self.endpoint, exc)
                raise BackendUnavailable(f"SageMaker endpoint {self.endpoint!r} is unreachable.") from None
            except BotoCoreError as exc:
                logger.warning("SageMaker %s could not be called: %s", self.endpoint, exc)
                raise BackendUnavailable(f"SageMaker endpoint {self.endpoint!r} could not be called.") from None
        try:
            answer = json.loads(raw)
        except ValueError:
            raise UpstreamError(f"SageMaker endpoint {self.endpoint!r} answered with non-JSON data.") from None
        if not isinstance(answer, dict):
            raise UpstreamError(f"SageMaker endpoint {self.endpoint!r} answered with unexpected JSON.")
        return answer

    def _sleep(self, attempt: int, why: str) -> None:
        delay = self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random())  # noqa: S311 - jitter, not crypto
        logger.warning("SageMaker %s (%s); retry %d/%d in %.2fs", self.endpoint, why, attempt,
                       self.max_attempts - 1, delay)
        time.sleep(delay)

    def _map(self, exc, code: str, status: int) -> LookalikeError:
        """A ClientError → a client-safe error; the service's own message (account ids, ARNs) is logged."""
        if code == "ModelError":
            return model_error(exc.response.get("OriginalStatusCode"), exc.response.get("OriginalMessage"),
                               self.endpoint)
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        logger.warning("SageMaker %s: %s (%s): %s", self.endpoint, code, status, message)
        if code == "ValidationError" and "not found" in message:
            return BackendUnavailable(f"SageMaker endpoint {self.endpoint!r} does not exist.")
        if code in RETRYABLE or status in (429, 503):
            return BackendUnavailable(f"SageMaker endpoint {self.endpoint!r} is busy or unavailable.")
        return UpstreamError(f"SageMaker endpoint {self.endpoint!r} refused the request ({code}).")


def _lookalike_error(original: str) -> dict | None:
    """``{"code", "message"}`` when the container's answer starts with lookalike's JSON error.

    The toolkit answers ``message + "\\n" + traceback`` with no content type (the message is the
    JSON ``inference.py`` puts into the exception), so only the first line is read."""
    first = original.lstrip().split("\n", 1)[0]
    try:
        error = json.loads(first).get("error")
    except (ValueError, AttributeError):
        return None
    if isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str):
        return {"code": error["code"], "message": " ".join(error["message"].split())[:500]}
    return None


def model_error(status: Any, original: Any, endpoint: str) -> LookalikeError:
    """A ModelError's ``OriginalStatusCode`` and ``OriginalMessage`` → the error a client sees.

    A 400/413 carrying lookalike's JSON error about the image is that same error; TorchServe's
    own 413 (its request size cap, an empty body) is ``payload_too_large``; no answer in time
    (status 0) or no free worker (503) is 503; everything else is 502. The container's text
    goes to the log, never into the returned message."""
    status = status if isinstance(status, int) else 0
    original = original if isinstance(original, str) else ""
    error = _lookalike_error(original)
    kind, codes = IMAGE_ERRORS.get(status, (None, ()))
    if kind is not None and error and error["code"] in codes:
        return kind(error["message"], code=error["code"])
    first = original.strip().split("\n", 1)[0][:300]
    logger.warning("SageMaker %s: model answered %s: %s", endpoint, status, first or "(empty body)")
    if status == 413:
        return PayloadTooLarge("The image is larger than the model endpoint accepts.")
    if status in (0, 503):
        return BackendUnavailable(f"The model endpoint {endpoint!r} is busy or did not answer in time.")
    what = f"{status} {error['code']}" if error else str(status)
    return UpstreamError(f"The model endpoint {endpoint!r} failed ({what}).")
