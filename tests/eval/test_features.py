"""The on-disk feature cache: rows match a fresh embedding, and only new items are embedded."""

from __future__ import annotations

import numpy as np

from lookalike.eval.datasets import image_folder
from lookalike.eval.features import cache_path, embed_images, extract


class Counting:
    """The real embedder, counting how many images it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.name, self.dim, self.fingerprint, self.count = inner, inner.name, inner.dim, \
            inner.fingerprint, 0

    def prepare(self, image):
        return self.inner.prepare(image)

    def encode_prepared(self, batch):
        self.count += len(batch)
        return self.inner.encode_prepared(batch)


def test_cache_reuses_rows_and_embeds_only_new_items(tmp_path, embedder, demo_dir):
    ds = image_folder(demo_dir)
    first, more = ds.subset(range(0, 6)), ds.subset(range(3, 9))
    counting = Counting(embedder)
    a = extract(first, counting, cache_dir=tmp_path, batch_size=4)
    assert counting.count == 6 and a.shape == (6, embedder.dim) and a.dtype == np.float32
    assert cache_path(tmp_path, ds.name, embedder).is_file()
    b = extract(more, counting, cache_dir=tmp_path, batch_size=4)
    assert counting.count == 9  # items 3..5 came from the cache
    np.testing.assert_array_equal(b[:3], a[3:])
    direct = embedder.encode([ds.image(i) for i in range(3, 9)])
    np.testing.assert_allclose(b, direct, atol=1e-5)
    assert extract(more, counting, cache_dir=tmp_path).shape == (6, embedder.dim) and counting.count == 9
    # A different model never reads these rows.
    counting.fingerprint = "other"
    extract(first, counting, cache_dir=tmp_path)
    assert counting.count == 15


def test_embed_images_keeps_order(embedder, demo_dir):
    ds = image_folder(demo_dir)
    rows = [10, 2, 7]
    out = embed_images(ds, rows, embedder, batch_size=2, workers=2)
    np.testing.assert_allclose(out, embedder.encode([ds.image(i) for i in rows]), atol=1e-5)
    assert embed_images(ds, [], embedder).shape == (0, embedder.dim)
