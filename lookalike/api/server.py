"""Running the FastAPI app under uvicorn with deadlines for slow clients.

uvicorn closes idle keep-alive connections, but any byte received cancels that timer, so a
client that sends its headers one byte every few seconds (slowloris) holds a socket for ever.
The protocol below gives every request ``header_timeout`` seconds from connection (or from
the previous response) to its last header line; the body has its own deadline in the app.

Built on uvicorn's httptools protocol (encode/uvicorn, ``uvicorn/protocols/http/httptools_impl.py``):
llhttp calls ``on_headers_complete`` once a request's headers are in (it creates the request's
``RequestResponseCycle`` there), and ``on_response_complete`` starts a pipelined request or waits
for the next one. httptools parses in C where h11 parses in Python: a request refused by the app
costs 0.64 instead of 0.76 ms at the client (with uvloop, which uvicorn then picks; docs/BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import json
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .. import memory
from ..errors import error_body

logger = logging.getLogger(__name__)


def _plain_response(status: bytes, code: str, message: str) -> bytes:
    """A whole ``Connection: close`` JSON response in the API's error shape, for answers given
    before (or instead of) the app: the app never sees these requests."""
    body = json.dumps(error_body(code, message)).encode()
    return (b"HTTP/1.1 %s\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (status, len(body), body))


TIMEOUT_RESPONSE = _plain_response(b"408 Request Timeout", "request_timeout", "Request headers took too long.")


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request's line and headers, and
    malformed requests answered in the API's JSON error shape (uvicorn answers them in text)."""

    header_timeout = 10.0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()  # a request's headers are complete (before the app can answer it)
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start a pipelined request, whose headers are in
        if self.cycle is None or self.cycle.response_complete:
            self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        self.transport.write(_plain_response(b"400 Bad Request", "bad_request", msg))
        self.transport.close()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or not (self.cycle is None or self.cycle.response_complete):
            return
        logger.info("closing a connection from %s: no complete request headers within %.0f s",
                    "%s:%d" % self.client if self.client else "?", self.header_timeout)
        self.transport.write(TIMEOUT_RESPONSE)
        self.transport.close()


def protocol(header_timeout: float) -> type[DeadlineProtocol]:
    return type("DeadlineProtocol", (DeadlineProtocol,), {"header_timeout": float(header_timeout)})


def run(app, settings) -> None:
    """Serve ``app`` on ``settings.host:port`` until interrupted."""
    import uvicorn

    memory.pin_mmap_threshold()  # large decodes give their memory back (see lookalike.memory)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", http=protocol(settings.header_timeout),
                timeout_keep_alive=5)
