"""lookalike.memory: faulting a memory-mapped file in ahead of its first reads."""

from __future__ import annotations

import mmap
import os
import platform

import numpy as np
import pytest

from lookalike import memory
from lookalike.index.faiss_index import FaissIndex

from .index.test_structures import fill

KERNEL = tuple(int(x) for x in platform.release().split(".")[:2] if x.isdigit())
needs_populate = pytest.mark.skipif(platform.system() != "Linux" or KERNEL < (5, 14),
                                    reason="MADV_POPULATE_READ is Linux 5.14+")


def resident_kb(path) -> int:
    """Resident kB of this process's mappings of ``path`` (/proc/self/smaps)."""
    target, total, inside = os.path.realpath(path), 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()
            if head and "-" in head[0] and not head[0].endswith(":"):
                inside = len(head) >= 6 and line.split(maxsplit=5)[5].strip() == target
            elif inside and head[0] == "Rss:":
                total += int(head[1])
    return total


@needs_populate
def test_populate_maps_every_page_of_the_file_without_reading_it(tmp_path):
    path = tmp_path / "codes.bin"
    path.write_bytes(os.urandom(8 << 20))
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert resident_kb(path) < 1024  # nothing touched yet
        assert memory.populate(path) == 8 << 20
        assert resident_kb(path) >= 8 * 1024  # every page mapped, before any read
        assert mapped[123] == path.read_bytes()[123]
    assert memory.populate(path) == 0  # unmapped: nothing to do
    assert memory.populate(tmp_path / "missing") == 0


@needs_populate
def test_a_memory_mapped_index_warms_its_file_and_searches_the_same(tmp_path):
    index = FaissIndex(tmp_path / "idx", 64, hnsw_threshold=100, ivf_threshold=2000)
    _, vectors = fill(index, 3000)
    index.save()
    assert index.warm() == 0  # held in memory: nothing mapped
    mapped = FaissIndex.load(tmp_path / "idx", mmap=True)
    before = mapped.search(vectors[:5], 5)
    file = next((tmp_path / "idx").glob("index-*.faiss"))
    assert mapped.warm() > 0.9 * file.stat().st_size
    assert resident_kb(file) > 0.9 * file.stat().st_size / 1024
    assert [[h.id for h in r] for r in mapped.search(vectors[:5], 5)] == [[h.id for h in r] for r in before]
    assert np.isfinite([h.score for r in before for h in r]).all()
