"""The local HTTP API (FastAPI): ``POST /search``, ``GET /images/{id}``, ``GET /healthz``, the web page.

A thin adapter over :mod:`lookalike.api.http`: methods, OPTIONS/CORS, the API key, body checks,
healthz, request ids and error bodies are decided there, identically for the Lambda.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..errors import BadRequest, InvalidInput, LookalikeError, NotFound, PayloadTooLarge, RequestTimeout, error_body
from ..search.browse import PAGE_DEFAULT, PAGE_MAX, list_images, list_labels
from ..search.duplicates import DEFAULT_THRESHOLD, find_duplicates
from ..search.duplicates import page as dupes_page
from .http import ROUTES, HttpLayer, ServiceHolder, error_response, image_signature, request_id
from .openapi import BROWSE_RESPONSES, HEALTH_RESPONSES, IMAGE_RESPONSES, SEARCH_RESPONSES, SearchResponseModel, finish, search_body
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
    dupes_cache: dict[str, Any] = {}
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

    # Other exceptions are answered by HttpEdge: Starlette's own handler for them re-raises after
    # answering, and uvicorn then drops the keep-alive connection without saying so.

    @app.post("/search", response_model=SearchResponseModel, openapi_extra={"requestBody": search_body(layer.limits)},
              responses=SEARCH_RESPONSES, summary="Find the K images most similar to a query image")
    async def search(request: Request):
        headers = request.headers
        layer.require_key(headers)
        layer.check_body_headers(headers)
        body = await _read_body(request, layer.limits.max_request_bytes, settings.body_timeout)
        return JSONResponse(await run_in_threadpool(layer.search, body))

    @app.get("/images/{id}", summary="An indexed image, or its thumbnail with ?size=thumb",
             responses=IMAGE_RESPONSES, response_class=Response)
    def image(id: str, request: Request, size: Literal["full", "thumb"] = "full", sig: str | None = None):
        layer.require_key_or_signature(request.headers, id, sig)
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

    @app.get("/images", summary="The indexed entries, a page at a time (ordered by id)", responses=BROWSE_RESPONSES)
    def images(request: Request, label: str | None = None, limit: int = Query(PAGE_DEFAULT, ge=1, le=PAGE_MAX),
               after: str | None = None):
        layer.require_key(request.headers)
        return list_images(holder.get().index, signed_url, label=label, limit=limit, after=after)

    @app.get("/labels", summary="The labels of the collection, with counts", responses=BROWSE_RESPONSES)
    def labels(request: Request):
        layer.require_key(request.headers)
        return list_labels(holder.get().index)

    @app.get("/duplicates", summary="Exact and near-duplicate groups, largest first", responses=BROWSE_RESPONSES)
    def duplicates(request: Request, threshold: float = Query(DEFAULT_THRESHOLD, gt=0, le=1),
                   limit: int = Query(20, ge=1, le=PAGE_MAX), after: str | None = None):
        layer.require_key(request.headers)
        index = holder.get().index
        key = (id(index), getattr(index, "generation", None), len(index), threshold)
        if dupes_cache.get("key") != key:  # one computation per index version and threshold
            dupes_cache.update(key=key, groups=find_duplicates(index, threshold))
        chunk, next_id = dupes_page(dupes_cache["groups"], limit=limit, after=after)
        out = []
        for group in chunk:
            body = group.to_dict()
            for member in body["members"]:
                member["url"] = signed_url(member["id"], {})
            out.append(body)
        return {"groups": out, "next": next_id, "threshold": threshold, "total": len(dupes_cache["groups"])}

    @app.get("/healthz", summary="Liveness and readiness", responses=HEALTH_RESPONSES)
    def healthz():
        return _json(layer.healthz())

    def openapi():
        if app.openapi_schema is None:
            app.openapi_schema = finish(get_openapi(title=app.title, version=app.version, description=app.description,
                                                    routes=app.routes), key_required=bool(settings.api_key))
        return app.openapi_schema

    app.openapi = openapi
    app.add_middleware(HttpEdge, layer=layer)
    web_dir = settings.web_dir or DEFAULT_WEB_DIR
    if Path(web_dir).is_dir():
        from fastapi.staticfiles import StaticFiles

        app.mount("/", StaticFiles(directory=web_dir, html=True), name="web")
    return app


async def _read_body(request: Request, limit: int, timeout: float) -> bytes:
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"Request body is larger than {limit} bytes.")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(f"The request body did not arrive within {timeout:g} s.") from None
    return b"".join(chunks)


def route_of(path: str) -> str | None:
    """The :data:`~lookalike.api.http.ROUTES` key of a request path, or None (static files, 404)."""
    if path in ROUTES:
        return path
    if path.startswith("/images/") and "/" not in path[len("/images/"):] and len(path) > len("/images/"):
        return "/images/{id}"
    return None


DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 5.0


class HttpEdge:
    """Plain ASGI middleware around the app (Starlette's ``BaseHTTPMiddleware`` costs about a
    millisecond a request):

    - the shared layer's early answers (OPTIONS, 405), and its CORS and request-id headers on
      every response; HEAD is answered as GET without the body;
    - a request body the app did not read (413, 415, 401, ...) is drained, bounded in bytes and
      time, before the answer goes out: closing a socket with unread bytes makes the kernel send
      a reset, and clients that send the whole body first (urllib, ``Connection: close``) then
      never see the answer. Past the bounds the answer says ``Connection: close``;
    - an unexpected error is answered here as the generic 500 (keeping the connection usable),
      and a client that went away mid-request is one log line, not a traceback.
    """

    def __init__(self, app, layer: HttpLayer):
        self.app, self.layer = app, layer

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rid = request_id(headers.get("x-request-id"))
        started, status, sent = time.perf_counter(), 500, False
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                 for k, v in self.layer.finish_headers(headers, rid).items()]
        route = route_of(scope["path"])
        head = scope["method"] == "HEAD" and route is not None and "HEAD" in ROUTES[route]
        if head:  # answered as GET without the body (RFC 9110), through the same checks
            scope = {**scope, "method": "GET"}
        body = _BodyState(headers)

        async def receive_tracked():
            return body.seen(await receive())

        async def send_with_headers(message):
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status, sent = message["status"], True
                out = [*message.get("headers", ()), *extra]
                if not body.done and not any(k == b"connection" for k, _ in out) \
                        and not await body.drain(receive_tracked):
                    out.append((b"connection", b"close"))
                message = {**message, "headers": out}
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            if "transfer-encoding" in headers and "content-length" in headers:
                # RFC 9112 section 6.1: a server may refuse such a request (a smuggling attempt, behind a
                # proxy that frames by length) and must close after answering; h11 frames it as chunked
                # and would keep the connection open for what follows.
                raise BadRequest("A request cannot carry both Content-Length and Transfer-Encoding.")
            early = self.layer.early("HEAD" if head else scope["method"], route, headers)
            if early is not None:
                await _json(early)(scope, receive_tracked, send_with_headers)
            else:
                await self.app(scope, receive_tracked, send_with_headers)
        except ClientDisconnect:
            logger.info("%s %s: the client went away before sending its whole request (id=%s)",
                        scope["method"], scope["path"], rid)
        except Exception as exc:  # noqa: BLE001 - answered as the one error shape, logged once
            if sent:
                raise
            await _json(error_response(exc))(scope, receive_tracked, send_with_headers)
        finally:
            logger.info("%s %s %s %.1fms id=%s", scope["method"], scope["path"], status,
                        (time.perf_counter() - started) * 1000, rid)


class _BodyState:
    """How much of the request body has been received, and draining the rest."""

    def __init__(self, headers: dict[str, str]):
        length = headers.get("content-length", "")
        self.declared = int(length) if length.isascii() and length.isdigit() else None
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.done = not chunked and not self.declared
        self.received = 0

    def seen(self, message):
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.done = self.done or not message.get("more_body", False)
        elif message["type"] == "http.disconnect":
            self.done = True
        return message

    async def drain(self, receive) -> bool:
        """Read and drop the rest of the body; False when it is too big or too slow to wait for."""
        if self.declared is not None and self.declared - self.received > DRAIN_BYTES:
            return False
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                while not self.done and self.received <= DRAIN_BYTES:
                    await receive()
        except TimeoutError:
            return False
        return self.done
