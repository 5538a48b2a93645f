"""The local HTTP API (FastAPI): ``POST /search``, ``GET /images/{id}``, ``GET /healthz``, the web page.

A thin adapter over :mod:`lookalike.api.http`: methods, OPTIONS/CORS, the API key, body checks,
healthz, request ids and error bodies are decided there, identically for the Lambda.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import InvalidInput, LookalikeError, NotFound, PayloadTooLarge, error_body
from .http import ROUTES, HttpLayer, ServiceHolder, error_response, image_signature, request_id
from .openapi import IMAGE_RESPONSES, SEARCH_RESPONSES, SearchResponseModel, search_body
from .thumbs import Thumbs

logger = logging.getLogger(__name__)

DEFAULT_WEB_DIR = Path(__file__).resolve().parent.parent.parent / "web"


def _json(response) -> JSONResponse | Response:
    if response.body is None:
        return Response(status_code=response.status, headers=response.headers)
    return JSONResponse(response.body, status_code=response.status, headers=response.headers)


def create_app(settings, *, service=None, service_factory=None) -> FastAPI:
    """The FastAPI app. ``service`` (or ``service_factory(settings)``) provides the search service."""
    from ..search.local import build_local_service
    from ..search.service import local_url

    thumbs = Thumbs()
    app = FastAPI(title="lookalike", version="0.1.0",
                  description="Content-based image search: send an image, get the most similar ones.")

    def signed_url(id: str, metadata: dict[str, Any]) -> str:
        url = local_url(id, metadata)
        return f"{url}?sig={image_signature(settings.api_key, id)}" if settings.api_key else url

    holder = ServiceHolder(settings, service_factory or (lambda s: build_local_service(s, url_for=signed_url)))
    holder.service = service
    layer = HttpLayer(settings, holder)
    app.state.holder, app.state.http = holder, layer

    @app.exception_handler(LookalikeError)
    async def _domain_error(request: Request, exc: LookalikeError):
        return _json(error_response(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
        return _json(error_response(InvalidInput(f"{where}: {first.get('msg', 'invalid value')}")))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        return _json(error_response(exc))

    @app.post("/search", response_model=SearchResponseModel, openapi_extra={"requestBody": search_body(layer.limits)},
              responses=SEARCH_RESPONSES, summary="Find the K images most similar to a query image")
    async def search(request: Request):
        headers = request.headers
        layer.require_key(headers)
        layer.check_body_headers(headers)
        body = await _read_body(request, layer.limits.max_request_bytes)
        return JSONResponse(await run_in_threadpool(layer.search, body))

    @app.get("/images/{id}", summary="An indexed image, or its thumbnail with ?size=thumb",
             responses=IMAGE_RESPONSES)
    def image(id: str, request: Request, size: str = "full", sig: str | None = None):
        layer.require_key_or_signature(request.headers, id, sig)
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

    @app.get("/healthz", summary="Liveness and readiness",
             responses={503: {"description": "No index loaded yet, or a backend is down"}})
    def healthz():
        return _json(layer.healthz())

    app.add_middleware(HttpEdge, layer=layer)
    web_dir = settings.web_dir or DEFAULT_WEB_DIR
    if Path(web_dir).is_dir():
        from fastapi.staticfiles import StaticFiles

        app.mount("/", StaticFiles(directory=web_dir, html=True), name="web")
    return app


async def _read_body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def route_of(path: str) -> str | None:
    """The :data:`~lookalike.api.http.ROUTES` key of a request path, or None (static files, 404)."""
    if path in ROUTES:
        return path
    if path.startswith("/images/") and "/" not in path[len("/images/"):] and len(path) > len("/images/"):
        return "/images/{id}"
    return None


class HttpEdge:
    """Plain ASGI middleware: the shared layer's early answers (OPTIONS, 405), its CORS and
    request-id headers on every response, and one log line per request. (Starlette's
    ``BaseHTTPMiddleware`` costs about a millisecond a request.)"""

    def __init__(self, app, layer: HttpLayer):
        self.app, self.layer = app, layer

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rid = request_id(headers.get("x-request-id"))
        started, status = time.perf_counter(), 500
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                 for k, v in self.layer.finish_headers(headers, rid).items()]

        route = route_of(scope["path"])
        head = scope["method"] == "HEAD" and route is not None and "HEAD" in ROUTES[route]
        if head:  # answered as GET without the body (RFC 9110), through the same checks
            scope = {**scope, "method": "GET"}

        async def send_with_headers(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra]
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            early = self.layer.early("HEAD" if head else scope["method"], route, headers)
            if early is not None:
                await _json(early)(scope, receive, send_with_headers)
            else:
                await self.app(scope, receive, send_with_headers)
        finally:
            logger.info("%s %s %s %.1fms id=%s", scope["method"], scope["path"], status,
                        (time.perf_counter() - started) * 1000, rid)
