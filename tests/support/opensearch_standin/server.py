"""The HTTP layer: routes, URL-parameter and Content-Type checks, auth, fault injection, a request log."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from .auth import Denied
from .errors import ApiError, bad_request, unsupported
from .query import source_filter
from .store import SHARDS, Cluster

logger = logging.getLogger(__name__)

COMMON = {"pretty", "human", "error_trace"}
UNIMPLEMENTED = {"filter_path", "q", "sort", "rest_total_hits_as_int", "stored_fields", "routing", "version",
                 "version_type", "if_seq_no", "if_primary_term", "pipeline", "op_type", "search_type", "min_score",
                 "terminate_after", "scroll"}
IGNORED = {"timeout", "master_timeout", "cluster_manager_timeout", "wait_for_active_shards", "ignore_unavailable",
           "allow_no_indices", "expand_wildcards", "local", "flat_settings", "include_defaults", "preference",
           "realtime", "request_cache", "typed_keys", "allow_partial_search_results", "ccs_minimize_roundtrips",
           "batched_reduce_size", "max_concurrent_shard_requests", "pre_filter_shard_size", "require_alias"}
SOURCE = {"_source", "_source_includes", "_source_excludes"}
IDX = r"(?P<index>[^/]+)"


@dataclass
class Recorded:
    """One request as the stand-in received it."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes = field(repr=False)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Router:
    """Maps ``(method, path)`` to a handler on :class:`Cluster` and enforces URL parameters."""

    def __init__(self, cluster: Cluster, version: str, distribution: str | None = "opensearch",
                 tagline: str = "The OpenSearch Project: https://opensearch.org/"):
        self.cluster, self.version, self.distribution, self.tagline = cluster, version, distribution, tagline
        self.reject_items: list[int] = [0]  # bulk index items still to answer with 429
        self.routes = [  # first match wins: the fixed "/_x" paths before "/{index}"
            (("GET", "HEAD"), r"/", self.info, set()),
            (("POST", "PUT"), r"/_bulk", self.bulk, {"refresh"} | SOURCE),
            (("GET", "POST"), r"/_mget", self.mget, {"refresh"} | SOURCE),
            (("HEAD",), rf"/{IDX}", self.exists, set()),
            (("GET",), rf"/{IDX}", self.get_index, set()),
            (("PUT",), rf"/{IDX}", self.create, set()),
            (("DELETE",), rf"/{IDX}", self.delete_index, set()),
            (("GET",), rf"/{IDX}/_mapping", self.mapping, set()),
            (("POST", "GET"), rf"/{IDX}/_refresh", self.refresh, set()),
            (("POST", "PUT"), rf"/{IDX}/_bulk", self.bulk, {"refresh"} | SOURCE),
            (("GET", "POST"), rf"/{IDX}/_search", self.search, {"size", "from", "track_total_hits"} | SOURCE),
            (("GET", "POST"), rf"/{IDX}/_count", self.count, set()),
            (("GET", "POST"), rf"/{IDX}/_mget", self.mget, {"refresh"} | SOURCE),
            (("GET", "HEAD"), rf"/{IDX}/_doc/(?P<id>.+)", self.get_doc, {"refresh"} | SOURCE),
            (("PUT", "POST"), rf"/{IDX}/_doc/(?P<id>.+)", self.put_doc, {"refresh"}),
            (("DELETE",), rf"/{IDX}/_doc/(?P<id>.+)", self.delete_doc, {"refresh"}),
        ]

    def dispatch(self, method: str, path: str, params: dict[str, str], body: Any, raw: bytes):
        allowed_methods = []
        for methods, pattern, handler, accepted in self.routes:
            m = re.fullmatch(pattern, path)
            if not m:
                continue
            if method not in methods:
                allowed_methods += methods
                continue
            for name in params:
                if name in UNIMPLEMENTED:
                    raise unsupported(f"the URL parameter [{name}]")
                if name not in accepted | COMMON | IGNORED:
                    raise bad_request(f"request [{path}] contains unrecognized parameter: [{name}]")
            # Path parts are matched encoded, then decoded: an id may hold an encoded "/".
            args = {k: unquote(v) for k, v in m.groupdict().items()}
            return handler(params=params, body=body, raw=raw, method=method, **args)
        if allowed_methods:
            raise ApiError(405, "method_not_allowed",
                           f"Incorrect HTTP method for uri [{path}] and method [{method}], allowed: "
                           f"[{', '.join(sorted(set(allowed_methods)))}]")
        raise ApiError(400, "no_handler", f"no handler found for uri [{path}] and method [{method}]")

    # ----- handlers: each returns (status, body) ------------------------------------------
    def info(self, **_):
        version = {"number": self.version, "build_type": "standin", "lucene_version": "9.12.1",
                   "minimum_wire_compatibility_version": "7.10.0", "minimum_index_compatibility_version": "7.0.0"}
        # Without "distribution": Elasticsearch and Open Distro, or OpenSearch in compatibility mode
        # (reports 7.10.2; opensearch-project/OpenSearch pull request #898), told apart by the tagline.
        if self.distribution:
            version = {"distribution": self.distribution, **version}
        return 200, {"name": "standin-node", "cluster_name": "opensearch-standin", "cluster_uuid": "standin",
                     "version": version, "tagline": self.tagline}

    def exists(self, index, **_):
        return (200 if index in self.cluster.indices else 404), None

    def get_index(self, index, **_):
        idx = self.cluster.get(index)
        settings = {k[len("index."):]: str(v).lower() if isinstance(v, bool) else str(v)
                    for k, v in idx.settings.items()}
        settings.update({"provided_name": index, "uuid": idx.uuid, "creation_date": str(int(idx.created * 1000))})
        return 200, {index: {"aliases": {}, "mappings": idx.mapping.to_json(), "settings": {"index": settings}}}

    def create(self, index, body, **_):
        # No Warning header for a deprecated engine: k-NN 2.19, src/main/java/org/opensearch/knn/index/
        # engine/EngineResolver.java only logs "[Deprecation] nmslib engine is deprecated" on the node;
        # 3.0 refuses nmslib outright (mapping.py).
        self.cluster.create(index, body)
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": index}

    def delete_index(self, index, **_):
        self.cluster.get(index)
        del self.cluster.indices[index]
        return 200, {"acknowledged": True}

    def mapping(self, index, **_):
        return 200, {index: {"mappings": self.cluster.get(index).mapping.to_json()}}

    def refresh(self, index, **_):
        self.cluster.get(index).refresh()
        return 200, {"_shards": SHARDS}

    def bulk(self, raw, params, index=None, **_):
        if not raw:
            raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: no requests added;")
        return 200, self.cluster.bulk(raw, index, _refresh(params), self.reject_items)

    def search(self, index, body, params, **_):
        return 200, self.cluster.search(index, body, params)

    def count(self, index, body, **_):
        return 200, {"count": self.cluster.count(index, body),
                     "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}

    def mget(self, body, params, index=None, **_):
        if not isinstance(body, dict) or not (isinstance(body.get("ids"), list) or isinstance(body.get("docs"), list)):
            raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: no documents to get;")
        wanted = [{"_index": index, "_id": i} for i in body.get("ids", [])] + list(body.get("docs", []))
        docs = []
        for spec in wanted:
            name, doc_id = spec.get("_index") or index, spec.get("_id")
            if not name:
                raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: index is missing;")
            if name not in self.cluster.indices:
                docs.append({"_index": name, "_id": doc_id, "error": {
                    "root_cause": [{"type": "index_not_found_exception", "reason": f"no such index [{name}]"}],
                    "type": "index_not_found_exception", "reason": f"no such index [{name}]"}})
                continue
            docs.append(self._doc_body(name, str(doc_id), source_filter(spec.get("_source"), params)))
        return 200, {"docs": docs}

    def get_doc(self, index, id, params, method, **_):
        self.cluster.get(index)
        out = self._doc_body(index, id, source_filter(None, params))
        return (200 if out["found"] else 404), (None if method == "HEAD" else out)

    def put_doc(self, index, id, body, params, **_):
        if index not in self.cluster.indices:
            self.cluster.create(index, None)
        idx = self.cluster.indices[index]
        result, doc = idx.put(id, body)
        if _refresh(params):
            idx.refresh()
        return (201 if result == "created" else 200), {**idx.doc_meta(doc), "result": result, "_shards": SHARDS}

    def delete_doc(self, index, id, params, **_):
        idx = self.cluster.get(index)
        existed, version, seq_no = idx.remove(id)
        if _refresh(params):
            idx.refresh()
        return (200 if existed else 404), {"_index": index, "_id": id, "_version": version,
                                           "result": "deleted" if existed else "not_found", "_shards": SHARDS,
                                           "_seq_no": seq_no, "_primary_term": 1}

    def _doc_body(self, name: str, doc_id: str, source) -> dict:
        idx = self.cluster.indices[name]
        doc = idx.docs.get(doc_id)
        if doc is None:
            return {"_index": name, "_id": doc_id, "found": False}
        out = {**idx.doc_meta(doc), "found": True}
        kept = source(doc.source)
        if kept is not None:
            out["_source"] = kept
        return out



def _refresh(params: dict[str, str]) -> bool:
    value = params.get("refresh", "false")
    if value not in ("", "true", "false", "wait_for"):
        raise bad_request(f"Unknown value for refresh: [{value}].")
    return value != "false"


def make_handler(standin) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``standin`` (an :class:`~opensearch_standin.OpenSearchStandin`)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "opensearch-standin"
        wbufsize = 1 << 16  # headers and body leave in one write (flushed after each request)

        def setup(self):
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
            logger.debug("%s " + format, self.address_string(), *args)

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            params = dict(parse_qsl(query, keep_blank_values=True))
            headers = {k: v for k, v in self.headers.items()}
            standin.requests.append(Recorded(self.command, path, params, headers, raw))
            extra_headers: dict[str, str] = {}
            pause = standin._take_delay(self.command, path)
            if pause:  # a slow cluster: the answer comes late (or after the client gave up)
                standin._stopping.wait(pause)
            try:
                if standin.auth is not None:
                    standin.auth.check(self.command, self.path, self.headers, raw)
                with standin.lock:
                    fault = standin._take_fault(self.command, path)
                    if fault is not None:
                        raise fault
                    body = self._parse_body(raw, path)
                    standin.router.reject_items = standin._reject_items
                    status, out = standin.router.dispatch(self.command, path, params, body, raw)
            except Denied as exc:
                status, out, extra_headers = exc.status, exc.body, exc.headers
            except ApiError as exc:
                status, out = exc.status, exc.body()
            except Exception:  # noqa: BLE001 - a bug in the stand-in must surface as a 500, loudly
                logger.exception("stand-in failure on %s %s", self.command, self.path)
                status, out = 500, {"error": {"root_cause": [{"type": "standin_bug", "reason": "see test log"}],
                                              "type": "standin_bug", "reason": "see test log"}, "status": 500}
            self._send(status, out, extra_headers)

        def _parse_body(self, raw: bytes, path: str):
            if not raw:
                return None
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype not in ("application/json", "application/x-ndjson"):
                raise ApiError(406, "content_type", f"Content-Type header [{ctype}] is not supported")
            if path.endswith("/_bulk"):
                return None
            try:
                return json.loads(raw, parse_constant=_no_constants)
            except ValueError as exc:
                raise ApiError(400, "json_parse_exception", f"Unexpected character: {exc}") from None

        def _send(self, status: int, out, headers: dict[str, str]):
            if isinstance(out, str):
                data, ctype = out.encode(), "text/plain; charset=UTF-8"
            else:
                data, ctype = (b"" if out is None else json.dumps(out).encode()), "application/json; charset=UTF-8"
            if status == 406 and isinstance(out, dict):  # OpenSearch answers this one with a flat error
                data = json.dumps({"error": out["error"]["reason"], "status": 406}).encode()
            if self.command == "HEAD":
                data = b""
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                self.close_connection = True

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler


def _no_constants(name: str):
    raise ValueError(f"Non-standard token '{name}'")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(standin, host: str, port: int) -> tuple[Server, threading.Thread]:
    server = Server((host, port), make_handler(standin))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              name="opensearch-standin", daemon=True)
    thread.start()
    return server, thread
