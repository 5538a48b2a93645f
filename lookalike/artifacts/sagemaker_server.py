"""A local server speaking SageMaker's wire protocol around the packaged ``inference.py``.

It answers both sides of a SageMaker endpoint on 127.0.0.1:

* the container contract: ``GET /ping`` → 200, ``POST /invocations`` (Content-Type, Accept);
* the runtime API that ``boto3.client("sagemaker-runtime").invoke_endpoint`` calls:
  ``POST /endpoints/{name}/invocations``. An unknown endpoint answers 400 ``ValidationError``
  and an error raised by the model answers 424 ``ModelError`` with ``OriginalStatusCode`` and
  ``OriginalMessage``, as the real service does. Requests are not authenticated.

It runs the model archive's own ``code/inference.py`` with ``code/`` first on ``sys.path``, as
the SageMaker inference toolkit does, so the vendored lookalike modules in the archive are the
ones exercised. This file imports only the standard library at module level: run it as a
script (``python -I sagemaker_server.py --model-dir ...``; ``lookalike sagemaker-serve`` does
that) so no other copy of lookalike is loaded first.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import shutil
import signal
import sys
import tarfile
import tempfile
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

logger = logging.getLogger("lookalike.artifacts.sagemaker_server")

UTF8_TYPES = ("application/json", "text/csv")  # the toolkit hands these to input_fn as str
DEFAULT_ACCEPT = "application/json"
MAX_BODY = 6 * 1024 * 1024  # AWS's cap on a real-time invocation payload (its limit, not a lookalike setting)
ACCOUNT = "000000000000"


def extract_archive(archive: Path) -> Path:
    """Unpack ``model.tar.gz`` like SageMaker does into ``/opt/ml/model`` (a temp dir here)."""
    target = Path(tempfile.mkdtemp(prefix="sagemaker-model-"))
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(target, filter="data")
    return target


class ModelContainer:
    """The user module loaded like the toolkit loads it, and its transform step."""

    def __init__(self, model_dir: Path):
        self.model_dir = Path(model_dir)
        code = self.model_dir / "code"
        if not (code / "inference.py").is_file():
            raise FileNotFoundError(f"{code / 'inference.py'} not found; is {model_dir} a lookalike model archive?")
        sys.path.insert(0, str(code))
        self.module = importlib.import_module("inference")
        self.model = self.module.model_fn(str(self.model_dir))
        self.lock = threading.Lock()

    def transform(self, body: bytes, content_type: str, accept: str) -> tuple[int, bytes, str]:
        """One invocation → ``(status, body, content type)``; errors as the toolkit reports them."""
        try:
            data: bytes | str = body
            if content_type in UTF8_TYPES:
                data = body.decode("utf-8")
            if not accept or accept == "*/*":
                accept = DEFAULT_ACCEPT
            inputs = self.module.input_fn(data, content_type)
            prediction = self.module.predict_fn(inputs, self.model)
            result = self.module.output_fn(prediction, accept)
            payload, out_type = result if isinstance(result, tuple) else (result, accept)
            return 200, payload.encode() if isinstance(payload, str) else bytes(payload), out_type
        except Exception as exc:  # noqa: BLE001 - the toolkit turns every error into a status
            # Like sagemaker_inference.Transformer.handle_error: the status of a toolkit error
            # (500 for any other exception) and a body of the message followed by the trace.
            trace = traceback.format_exc()
            status = getattr(exc, "status_code", 500)
            message = getattr(exc, "message", None) or str(exc)
            if status >= 500:
                logger.error("model error: %s", trace)
            return status, f"{message}\n{trace}".encode(), "text/plain"


def _model_error(status: int, message: str, endpoint: str, region: str) -> dict:
    kind = "client" if status < 500 else "server"
    log_group = f"/aws/sagemaker/Endpoints/{endpoint}"
    return {
        "ErrorCode": f"{kind.upper()}_ERROR_FROM_MODEL",
        "LogStreamArn": f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{log_group}",
        "Message": f"Received {kind} error ({status}) from primary with message \"{message}\". "
                   f"See the log group {log_group} in account {ACCOUNT} for more information.",
        "OriginalMessage": message,
        "OriginalStatusCode": status,
    }


def make_handler(container: ModelContainer, endpoint: str, region: str):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "lookalike-sagemaker-local"

        def log_message(self, fmt, *args):  # route http.server's stderr lines to logging
            logger.debug("%s " + fmt, self.address_string(), *args)

        def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, kind: str, body: dict) -> None:
            self._send(status, json.dumps(body).encode(), "application/json", {"x-amzn-ErrorType": kind})

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self):
            if self.path == "/ping":
                self._send(200, b"\n", "text/plain")
            else:
                self._error(404, "UnknownOperationException", {"message": f"No route for GET {self.path}"})

        def do_POST(self):
            started = time.perf_counter()
            body = self._body()
            path = self.path.split("?")[0]
            content_type = self.headers.get("Content-Type", "")
            accept = self.headers.get("Accept", "")
            parts = path.strip("/").split("/")
            if path == "/invocations":
                status, out, out_type = container.transform(body, content_type, accept)
                self._send(status, out, out_type)
            elif len(parts) == 3 and parts[0] == "endpoints" and parts[2] == "invocations":
                if parts[1] != endpoint:
                    self._error(400, "ValidationError", {
                        "message": f"Endpoint {parts[1]} of account {ACCOUNT} not found."})
                    return
                if len(body) > MAX_BODY:
                    self._error(413, "ValidationError", {
                        "message": f"Request payload of {len(body)} bytes exceeds the limit of {MAX_BODY} bytes."})
                    return
                status, out, out_type = container.transform(body, content_type, accept)
                if status == 200:
                    self._send(200, out, out_type, {"x-Amzn-Invoked-Production-Variant": "AllTraffic"})
                else:
                    self._error(424, "ModelError", _model_error(status, out.decode(errors="replace"), endpoint, region))
            else:
                self._error(404, "UnknownOperationException", {"message": f"No route for POST {path}"})
                return
            logger.info("POST %s %s %d bytes %.1fms", path, content_type, len(body),
                        (time.perf_counter() - started) * 1000)

    return Handler


def serve(model_dir: Path, *, host: str = "127.0.0.1", port: int = 8080, endpoint: str = "lookalike",
          region: str = "us-east-1") -> None:
    """Load the model archive (a directory or ``model.tar.gz``) and serve until interrupted."""
    model_dir = Path(model_dir)
    unpacked = extract_archive(model_dir) if model_dir.is_file() else None
    # SIGTERM (how tests and process managers stop it) unwinds like Ctrl-C, so the unpacked copy is removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        container = ModelContainer(unpacked or model_dir)
        server = ThreadingHTTPServer((host, port), make_handler(container, endpoint, region))
        server.daemon_threads = True
        print(f"SageMaker-protocol server for endpoint {endpoint!r} ({container.model.name}, "
              f"{container.model.dim}-d) at http://{host}:{server.server_address[1]}/ "
              f"(code from {container.module.__file__})", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    finally:
        if unpacked is not None:
            shutil.rmtree(unpacked, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a lookalike model archive over SageMaker's wire protocol.")
    parser.add_argument("--model-dir", type=Path, required=True, help="model.tar.gz or its extracted folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--endpoint-name", default="lookalike", help="the only endpoint name accepted")
    parser.add_argument("--region", default="us-east-1", help="region shown in error messages")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(args.model_dir, host=args.host, port=args.port, endpoint=args.endpoint_name, region=args.region)
    return 0


if __name__ == "__main__":
    sys.exit(main())
