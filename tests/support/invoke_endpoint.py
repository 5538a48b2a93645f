"""AWS's front door of a SageMaker endpoint (``sagemaker-runtime`` InvokeEndpoint) on 127.0.0.1.

The only home-made part of the cloud-shaped SageMaker path: it relays
``POST /endpoints/{name}/invocations`` to a real container's ``/invocations``
(:class:`~tests.support.sagemaker_container.SageMakerContainer`) and wraps a non-2xx answer in
the 424 ``ModelError`` the service returns. Standard library only.
"""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACCOUNT = "000000000000"
# What SageMaker says when the container has not answered within its 60 s (quoted in
# RamVegiraju/SageMaker-Deployment issue #3: "Received server error (0) from primary ...").
TIMED_OUT = ("Your invocation timed out while waiting for a response from container primary. Review the latency "
             "metrics for each container in Amazon CloudWatch, resolve the issue, and try again.")


def model_error_body(status: int, message: str, endpoint: str, region: str) -> dict:
    """The body real SageMaker returns (HTTP 424) when the container answers non-2xx."""
    kind = "client" if status < 500 else "server"
    group = f"/aws/sagemaker/Endpoints/{endpoint}"
    console = f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logEventViewer:group={group}"
    # The ModelError shape (httpStatusCode 424) in boto/botocore botocore/data/sagemaker-runtime/
    # 2017-05-13/service-2.json has Message, OriginalStatusCode, OriginalMessage, LogStreamArn.
    # ErrorCode is not modelled but real answers carry it; the Message is worded as real endpoints
    # word it (quoted in aws/amazon-sagemaker-examples issues #1881 and #4324).
    return {"ErrorCode": f"{kind.upper()}_ERROR_FROM_MODEL",
            "LogStreamArn": f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{group}",
            "Message": f'Received {kind} error ({status}) from primary with message "{message}". '
                       f"See {console} in account {ACCOUNT} for more information.",
            "OriginalMessage": message, "OriginalStatusCode": status}


class InvokeEndpointForwarder:
    """``POST /endpoints/{name}/invocations`` (sagemaker-runtime) → the container's ``/invocations``."""

    # Headers of InvokeEndpointInput/Output (service-2.json) relayed; CustomAttributes goes both ways.
    PASS_IN = ("Content-Type", "Accept", "X-Amzn-SageMaker-Custom-Attributes")
    PASS_OUT = ("Content-Type", "X-Amzn-SageMaker-Custom-Attributes")

    def __init__(self, container_url: str, endpoint: str = "lookalike", region: str = "us-east-1", *,
                 port: int = 0, timeout: float = 60.0):
        self.target = container_url.split("//", 1)[1]
        self.endpoint, self.region, self.timeout = endpoint, region, timeout  # SageMaker allows 60 s
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "InvokeEndpointForwarder":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        forwarder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):  # the container keeps the access log
                pass

            def _send(self, status: int, body: bytes, headers: dict) -> None:
                self.send_response(status)
                for item in {"x-amzn-RequestId": str(uuid.uuid4()), **headers, "Content-Length": len(body)}.items():
                    self.send_header(*map(str, item))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, kind: str, body: dict) -> None:
                # botocore's rest-json parser reads the error code from x-amzn-ErrorType.
                self._send(status, json.dumps(body).encode(), {"Content-Type": "application/json",
                                                               "x-amzn-ErrorType": kind})

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) != 3 or parts[0] != "endpoints" or parts[2] != "invocations":
                    return self._error(404, "UnknownOperationException", {"message": f"No route for {self.path}"})
                if parts[1] != forwarder.endpoint:
                    return self._error(400, "ValidationError",
                                       {"Message": f"Endpoint {parts[1]} of account {ACCOUNT} not found."})
                headers = {k: self.headers[k] for k in forwarder.PASS_IN if self.headers.get(k)}
                conn = http.client.HTTPConnection(forwarder.target, timeout=forwarder.timeout)
                try:
                    conn.request("POST", "/invocations", body=body, headers=headers)
                    answer = conn.getresponse()
                    status, out, out_headers = answer.status, answer.read(), answer.headers
                except TimeoutError:
                    return self._error(424, "ModelError",
                                       model_error_body(0, TIMED_OUT, forwarder.endpoint, forwarder.region))
                except OSError as exc:
                    return self._error(500, "InternalFailure", {"Message": f"container unreachable: {exc}"})
                finally:
                    conn.close()
                if 200 <= status < 300:
                    passed = {k: out_headers[k] for k in forwarder.PASS_OUT if out_headers.get(k)}
                    return self._send(200, out, {**passed, "x-Amzn-Invoked-Production-Variant": "AllTraffic"})
                message = out.decode("utf-8", errors="replace")
                self._error(424, "ModelError", model_error_body(status, message, forwarder.endpoint, forwarder.region))

        return Handler
