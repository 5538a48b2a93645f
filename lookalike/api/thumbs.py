"""Thumbnails of indexed images for the web page, kept in a small LRU cache."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from ..fsutil import read_regular_file
from ..imaging import decode_image, thumbnail_bytes


class Thumbs:
    """A small LRU cache of JPEG thumbnails keyed by (path, mtime, size)."""

    def __init__(self, capacity: int = 512):
        self.capacity, self._items, self._lock = capacity, OrderedDict(), threading.Lock()

    def get(self, path: Path, size: int, max_pixels: int) -> bytes:
        key = (str(path), path.stat().st_mtime_ns, size)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        # A FIFO or device put where an indexed file was must not block a server thread.
        data = thumbnail_bytes(decode_image(read_regular_file(path), max_pixels=max_pixels), size)
        with self._lock:
            self._items[key] = data
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return data
