"""Running the FastAPI app under uvicorn with deadlines for slow clients.

uvicorn closes idle keep-alive connections, but any byte received cancels that timer, so a
client that sends its headers one byte every few seconds (slowloris) holds a socket for ever.
The protocol below gives every request ``header_timeout`` seconds from connection (or from
the previous response) to its last header line; the body has its own deadline in the app.
Built on uvicorn's h11 protocol (encode/uvicorn, ``uvicorn/protocols/http/h11_impl.py``):
``handle_events`` creates a ``RequestResponseCycle`` once a request's headers are complete,
and ``on_response_complete`` waits for the next request.

h11, not httptools: h11 bounds a request's line and headers (16 KB, ``max_incomplete_event_size``)
where uvicorn's httptools protocol buffers them without limit (headers of 2.2 GB in 5 s took the
server to 2.3 GB of RSS). The event loop is uvloop where it is installed (uvicorn picks it):
a request refused by the app 0.54-0.61 instead of 0.64-0.70 ms at the client; httptools would
have saved 0.03-0.06 ms more (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus

from uvicorn.protocols.http.h11_impl import H11Protocol

from .. import memory
from ..errors import BadRequest, LookalikeError, RequestTimeout, error_body

logger = logging.getLogger(__name__)


def _closing_response(error: type[LookalikeError], message: str) -> bytes:
    """A whole ``Connection: close`` JSON response in the API's error shape, for answers the
    protocol gives itself (the app never sees these requests)."""
    body = json.dumps(error_body(error.code, message)).encode()
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (error.status, HTTPStatus(error.status).phrase.encode(), len(body), body))


TIMEOUT_RESPONSE = _closing_response(RequestTimeout, "Request headers took too long.")


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's line and headers, and requests
    it cannot parse answered in the API's JSON error shape (uvicorn answers them in plain text)."""

    header_timeout = 10.0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not None and self.cycle is not before:  # a request's headers are complete
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start a pipelined request (handle_events disarms)
        if self.cycle is None or self.cycle.response_complete:
            self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        self.transport.write(_closing_response(BadRequest, msg))
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
