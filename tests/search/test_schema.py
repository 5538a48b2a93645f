"""The shared request parser and the one error → HTTP mapping."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from lookalike.errors import (BackendUnavailable, InvalidInput, NotFound, PayloadTooLarge, UnsupportedMediaType,
                              UpstreamError, to_http)
from lookalike.search.schema import Limits, SearchResponse, SearchResult, check_content_type, parse_json_body, \
    parse_search_request

LIMITS = Limits(max_request_bytes=1000, max_image_pixels=100, k_default=5, k_max=100)
IMG = base64.b64encode(b"imagebytes").decode()


def test_valid_request():
    req = parse_search_request({"image": IMG, "k": 7, "filter": {"label": "birds"}}, LIMITS)
    assert req.image == b"imagebytes" and req.k == 7 and req.filter == {"label": "birds"}
    assert parse_search_request({"image": IMG}, LIMITS).k == 5


@pytest.mark.parametrize("payload,fragment", [
    ([], "JSON object"), ({"k": 5}, "Missing field 'image'"), ({"image": "%%%"}, "not valid base64"),
    ({"image": IMG, "k": 0}, "1..100"), ({"image": IMG, "k": 101}, "1..100"), ({"image": IMG, "k": "five"}, "integer"),
    ({"image": IMG, "k": True}, "integer"), ({"image": IMG, "k": 2.5}, "integer"),
    # JSON types are strict: text that looks like a number is not one, and null is not "absent".
    ({"image": IMG, "k": "5"}, "integer"), ({"image": IMG, "k": "\u0665"}, "integer"),
    ({"image": IMG, "k": "\u00b2"}, "integer"), ({"image": IMG, "k": None}, "got null"),
    ({"image": IMG, "K": 5}, "Unknown field"),
    ({"image": IMG, "filter": "birds"}, "filter"), ({"image": IMG, "filter": {"path": "/etc"}}, "supports only"),
    ({"image": IMG, "filter": {"label": 3}}, "string"),
])
def test_invalid_requests(payload, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        parse_search_request(payload, LIMITS)


def test_body_limits_and_json():
    with pytest.raises(PayloadTooLarge):
        parse_json_body(b"x" * 1001, LIMITS)
    with pytest.raises(InvalidInput, match="JSON"):
        parse_json_body(b"{not json", LIMITS)
    assert parse_json_body(json.dumps({"a": 1}).encode(), LIMITS) == {"a": 1}


@pytest.mark.parametrize("ct", [None, "", "text/plain", "multipart/form-data; boundary=x", "application/jsonp"])
def test_content_type_must_be_json(ct):
    with pytest.raises(UnsupportedMediaType):
        check_content_type(ct)


def test_content_type_with_charset_is_fine():
    check_content_type("application/json; charset=utf-8")


@pytest.mark.parametrize("exc,status,code", [
    (InvalidInput("m"), 400, "invalid_input"), (NotFound("m"), 404, "not_found"),
    (PayloadTooLarge("m"), 413, "payload_too_large"), (UnsupportedMediaType("m"), 415, "unsupported_media_type"),
    (UpstreamError("m"), 502, "bad_gateway"), (BackendUnavailable("m"), 503, "backend_unavailable"),
    (InvalidInput("m", code="invalid_image"), 400, "invalid_image"),
])
def test_error_mapping(exc, status, code):
    assert to_http(exc) == (status, {"error": {"code": code, "message": "m"}})


def test_unknown_errors_are_generic_and_logged(caplog):
    with caplog.at_level(logging.ERROR):
        status, body = to_http(RuntimeError("secret internals"))
    assert status == 500 and "secret" not in json.dumps(body)
    assert "secret internals" in caplog.text


def test_response_shape():
    resp = SearchResponse([SearchResult("a", "birds", 0.91234567, "/images/a")], took_ms=12.345)
    assert resp.to_dict() == {"results": [{"id": "a", "label": "birds", "score": 0.91234567, "url": "/images/a"}],
                              "took_ms": 12.35}


@pytest.mark.parametrize("body", ["[" * 100_000 + "]" * 100_000, '{"a":' * 5000,
                                  '{"image": "x", "k": ' + "9" * 5000 + "}"])
def test_hostile_json_is_invalid_input_not_a_crash(body):
    with pytest.raises(InvalidInput):
        parse_json_body(body.encode(), Limits(max_request_bytes=10**6, max_image_pixels=10))

