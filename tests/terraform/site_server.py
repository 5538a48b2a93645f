"""Serve a folder of objects downloaded from the page bucket the way the bucket answered for them.

Each file goes out with the ``Content-Type`` and ``Cache-Control`` S3 returned for its object
(OBJECTS, a JSON file ``{key: {"ContentType": ..., "CacheControl": ...}}``), and ``/`` with
``index.html`` (the bucket's index document). Everything else is ``http.server``.

Usage: python site_server.py DIR OBJECTS PORT
"""

from __future__ import annotations

import json
import os
import sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class ObjectHandler(SimpleHTTPRequestHandler):
    """Static files with the headers of the S3 objects they were downloaded from."""

    def __init__(self, *args, objects: dict[str, dict[str, str]], **kwargs):
        self.objects = objects
        self.object: dict[str, str] = {}
        super().__init__(*args, **kwargs)

    def guess_type(self, path: str) -> str:
        key = os.path.relpath(path, self.directory).replace(os.sep, "/")
        self.object = self.objects.get(key, {})
        return self.object.get("ContentType", "application/octet-stream")

    def end_headers(self) -> None:
        if self.object.get("CacheControl"):
            self.send_header("Cache-Control", self.object["CacheControl"])
        super().end_headers()


def main(directory: str, objects_json: str, port: int) -> None:
    with open(objects_json) as f:
        objects = json.load(f)
    handler = partial(ObjectHandler, directory=directory, objects=objects)
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
