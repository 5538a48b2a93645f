"""The local HTTP API (FastAPI): ``POST /search``, ``GET /images/{id}``, ``GET /healthz``, the web page.

Requests are validated by :mod:`lookalike.schema` (the same code the Lambda uses) and every
error leaves through :func:`lookalike.errors.to_http`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import BackendUnavailable, InvalidInput, LookalikeError, NotFound, PayloadTooLarge, Unauthorized, to_http
from .imaging import decode_image, thumbnail_bytes
from .schema import check_content_type, parse_json_body

logger = logging.getLogger(__name__)

DEFAULT_WEB_DIR = Path(__file__).resolve().parent.parent / "web"


class ResultModel(BaseModel):
    id: str
    label: str | None
    score: float
    url: str


class SearchResponseModel(BaseModel):
    results: list[ResultModel]
    took_ms: float
    predicted_label: str | None = None  # only with a classifier configured (two-step search)


SEARCH_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["image"],
        "properties": {
            "image": {"type": "string", "format": "byte", "description": "Base64 image (JPEG, PNG, WebP, BMP, GIF, TIFF)"},
            "k": {"type": "integer", "minimum": 1, "maximum": 100, "default": 5},
            "filter": {"type": "object", "properties": {"label": {"type": "string"}},
                       "description": "Restrict results, e.g. {\"label\": \"birds\"}"},
        }}}},
}
ERROR_RESPONSES = {code: {"description": text, "content": {"application/json": {"example": {
    "error": {"code": "invalid_input", "message": "..."}}}}}
    for code, text in [(400, "Invalid input"), (401, "Missing or wrong x-api-key"), (413, "Too large"),
                       (415, "Not JSON"), (503, "No index loaded")]}


def image_signature(secret: str, id: str) -> str:
    """An unguessable per-image token, so result URLs work in <img> tags when an API key is set."""
    return hmac.new(secret.encode(), id.encode(), hashlib.sha256).hexdigest()[:24]


class _ServiceHolder:
    """Builds the search service on first use and retries while no index exists yet."""

    def __init__(self, settings, factory):
        self.settings, self.factory = settings, factory
        self.service = None
        self.error: str | None = None
        self._lock = threading.Lock()

    def get(self):
        if self.service is None:
            with self._lock:
                if self.service is None:
                    try:
                        self.service = self.factory(self.settings)
                        self.error = None
                    except BackendUnavailable as exc:
                        self.error = exc.message
                        raise
        return self.service


class _Thumbs:
    """A small LRU cache of thumbnails keyed by (path, mtime, size)."""

    def __init__(self, capacity: int = 512):
        self.capacity, self._items, self._lock = capacity, OrderedDict(), threading.Lock()

    def get(self, path: Path, size: int, max_pixels: int) -> bytes:
        key = (str(path), path.stat().st_mtime_ns, size)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        data = thumbnail_bytes(decode_image(path.read_bytes(), max_pixels=max_pixels), size)
        with self._lock:
            self._items[key] = data
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return data


def create_app(settings, *, service=None, service_factory=None) -> FastAPI:
    """The FastAPI app. ``service`` (or ``service_factory(settings)``) provides the search service."""
    from .service import build_local_service, local_url

    thumbs = _Thumbs()
    app = FastAPI(title="lookalike", version="0.1.0",
                  description="Content-based image search: send an image, get the most similar ones.")

    def signed_url(id: str, metadata: dict[str, Any]) -> str:
        url = local_url(id, metadata)
        return f"{url}?sig={image_signature(settings.api_key, id)}" if settings.api_key else url

    holder = _ServiceHolder(settings, service_factory or (lambda s: build_local_service(s, url_for=signed_url)))
    holder.service = service
    app.state.holder = holder

    def require_key(request: Request) -> None:
        if settings.api_key and not hmac.compare_digest(request.headers.get("x-api-key", ""), settings.api_key):
            raise Unauthorized("Missing or wrong x-api-key header.")

    @app.exception_handler(LookalikeError)
    async def _domain_error(request: Request, exc: LookalikeError):
        status, body = to_http(exc)
        return JSONResponse(body, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
        status, body = to_http(InvalidInput(f"{where}: {first.get('msg', 'invalid value')}"))
        return JSONResponse(body, status_code=status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        status, body = to_http(exc)
        return JSONResponse(body, status_code=status)

    @app.post("/search", response_model=SearchResponseModel, openapi_extra={"requestBody": SEARCH_BODY},
              responses=ERROR_RESPONSES, summary="Find the K images most similar to a query image")
    async def search(request: Request):
        require_key(request)
        check_content_type(request.headers.get("content-type"))
        body = await _read_body(request, settings.max_request_bytes)
        service = holder.get()
        payload = parse_json_body(body, service.limits)
        return JSONResponse(await run_in_threadpool(service.search_payload, payload))

    @app.api_route("/search", methods=["GET", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def search_wrong_method(request: Request):
        # Without this the static web mount at "/" would answer 404 for GET /search.
        return JSONResponse({"error": {"code": "method_not_allowed", "message": "Use POST /search."}},
                            status_code=405, headers={"allow": "POST"})

    @app.get("/images/{id}", summary="An indexed image, or its thumbnail with ?size=thumb",
             responses={404: ERROR_RESPONSES[400] | {"description": "Unknown id"}})
    def image(id: str, request: Request, size: str = "full", sig: str | None = None):
        if settings.api_key and not (sig and hmac.compare_digest(sig, image_signature(settings.api_key, id))):
            require_key(request)
        if size not in ("full", "thumb"):
            raise InvalidInput("size must be 'full' or 'thumb'.")
        meta = holder.get().index.get(id)
        if meta is None or not meta.get("path"):
            raise NotFound(f"No image with id {id!r}.")
        path = Path(meta["path"])
        if not path.is_file():
            raise NotFound(f"Image {id!r} is indexed but its file is gone; re-run `lookalike index --prune`.")
        headers = {"cache-control": "private, max-age=3600"}
        if size == "thumb":
            return Response(thumbs.get(path, settings.thumb_size, settings.max_image_pixels),
                            media_type="image/jpeg", headers=headers)
        return FileResponse(path, headers=headers)

    @app.get("/healthz", summary="Liveness and readiness")
    def healthz():
        try:
            service = holder.get()
        except BackendUnavailable as exc:
            return JSONResponse({"status": "no_index", "message": exc.message}, status_code=503)
        return {"status": "ok", "count": len(service.index), "model": service.embedder.name,
                "dim": service.embedder.dim}

    _mount_cors(app, settings)
    app.add_middleware(RequestLog)
    web_dir = settings.web_dir or DEFAULT_WEB_DIR
    if Path(web_dir).is_dir():
        from fastapi.staticfiles import StaticFiles

        app.mount("/", StaticFiles(directory=web_dir, html=True), name="web")
    return app


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body is larger than {limit} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


class RequestLog:
    """Logs one line per request and returns its id in ``x-request-id`` (the client's, if it sent a
    sane one). Plain ASGI: Starlette's ``BaseHTTPMiddleware`` costs about a millisecond a request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(b"x-request-id", b"")
        request_id = sent.decode("latin-1") if _REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex[:16]
        started, status = time.perf_counter(), 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logger.info("%s %s %s %.1fms id=%s", scope["method"], scope["path"], status,
                        (time.perf_counter() - started) * 1000, request_id)


_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


def _mount_cors(app: FastAPI, settings) -> None:
    if not settings.cors_origins:
        return
    from fastapi.middleware.cors import CORSMiddleware

    app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                       allow_headers=["content-type", "x-api-key"], max_age=600)
