"""``model_error``: what a client gets for a container answer that is not among the captured ones
(those are replayed through boto3 in test_sagemaker_embedder.py). Never the container's text."""

from __future__ import annotations

import json

import pytest

from lookalike.cloud.sagemaker_embedder import model_error
from lookalike.errors import InvalidInput


@pytest.mark.parametrize("status, body, expected", [
    (400, "Bad Request", (502, "bad_gateway")),  # plain text, not lookalike's
    (400, '{"code": 400, "type": "BadRequestException", "message": "Parameter is missing"}\n', (502, "bad_gateway")),
    (404, '{\n  "code": 404,\n  "type": "ModelNotFoundException",\n  "message": "Model not found: model"\n}\n',
     (502, "bad_gateway")),
    (400, '{"error": {"code": "image_too_large", "message": "wrong status"}}\nTraceback', (502, "bad_gateway")),
    (400, '{"error": {"code": "made_up", "message": "x"}}', (502, "bad_gateway")),
    (400, '{"error": "not an object"}', (502, "bad_gateway")),
    (400, '{"error": {"code": "invalid_image", "message": 7}}', (502, "bad_gateway")),
    (500, "", (502, "bad_gateway")),
    (507, "", (502, "bad_gateway")),
    (413, "", (413, "payload_too_large")),
    (413, "<html>413 Request Entity Too Large</html>", (413, "payload_too_large")),
    (0, "Your invocation timed out while waiting for a response from container primary.", (503, "backend_unavailable")),
    (None, None, (503, "backend_unavailable")),  # a ModelError without OriginalStatusCode/OriginalMessage
])
def test_other_container_answers(status, body, expected):
    error = model_error(status, body, "ep")
    assert (error.status, error.code) == expected
    for leak in ("Parameter", "Model not found", "wrong status", "html", "timed out while", "{"):
        assert leak not in error.message, error.message


def test_long_message_is_one_short_line():
    body = json.dumps({"error": {"code": "invalid_image", "message": "bad\n\t" + "x" * 5000}}) + "\nTraceback ..."
    error = model_error(400, body, "ep")
    assert isinstance(error, InvalidInput) and error.message.startswith("bad x") and len(error.message) <= 500


def test_leading_whitespace_is_allowed():
    error = model_error(400, '\n {"error": {"code": "invalid_image", "message": "Not an image."}}\nTraceback', "ep")
    assert (error.status, error.code, error.message) == (400, "invalid_image", "Not an image.")
