"""Dataset loaders (IDX parsing, Fashion-MNIST, Tux Paint stamps, folders) and seeded splits."""

from __future__ import annotations

import gzip
import struct
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lookalike.eval import datasets
from lookalike.errors import ConfigError, LookalikeError
from tests.conftest import DATASETS_DIR

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def debian_datasets():
    """Unpack the Debian packages (`make datasets`) when they are not there yet."""
    def present():
        fashion = datasets.search_dirs("dataset-fashion-mnist", datasets.FASHION_MNIST_SUBDIR, DATASETS_DIR)
        tux = datasets.search_dirs("tuxpaint-stamps-default", datasets.TUXPAINT_SUBDIR, DATASETS_DIR)
        return any((d / "t10k-labels-idx1-ubyte.gz").exists() for d in fashion) and \
            any((d / "animals").is_dir() for d in tux)

    if not present():
        subprocess.run(["bash", str(ROOT / "scripts" / "fetch_datasets.sh")], check=False, timeout=600)
    if not present():
        pytest.fail("the Debian datasets could not be unpacked: run `make datasets` (needs apt-get download)")


def write_idx(path: Path, array: np.ndarray) -> None:
    header = b"\0\0\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_read_idx(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x.gz", array)
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "x.gz"), array)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ConfigError, match="IDX"):
        datasets.read_idx(tmp_path / "bad")
    with gzip.open(tmp_path / "short.gz", "wb") as fh:
        fh.write(b"\0\0\x08\x01" + struct.pack(">I", 10) + b"abc")
    with pytest.raises(ConfigError, match="holds 3 bytes"):
        datasets.read_idx(tmp_path / "short.gz")


def test_fashion_mnist_from_a_folder(tmp_path):
    images = np.zeros((4, 28, 28), np.uint8)
    images[1, 5, 5] = 255
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([0, 9, 9, 3]))
    ds = datasets.fashion_mnist("test", root=tmp_path)
    assert ds.labels == ["tshirt-top", "ankle-boot", "ankle-boot", "dress"]
    image = ds.image(1)
    assert image.mode == "RGB" and image.size == (28, 28) and image.getpixel((5, 5)) == (255, 255, 255)
    with pytest.raises(ConfigError, match="split"):
        datasets.fashion_mnist("validation", root=tmp_path)


def test_fashion_mnist_real(debian_datasets):
    test = datasets.fashion_mnist("test", datasets_dir=DATASETS_DIR)
    assert len(test) == 10_000 and test.classes == sorted(datasets.FASHION_MNIST_CLASSES)
    assert set(Counter(test.labels).values()) == {1000}
    assert test.image(0).size == (28, 28) and len(set(test.keys)) == 10_000
    splits = datasets.train_test("fashion-mnist", train_limit=600, test_limit=200, seed=3,
                                 datasets_dir=DATASETS_DIR)
    assert len(splits.train) == 600 and len(splits.test) == 200
    assert set(Counter(splits.train.labels).values()) == {60}  # stratified
    assert all(k.startswith("train/") for k in splits.train.keys)
    assert all(k.startswith("t10k/") for k in splits.test.keys)


def test_tuxpaint_real(debian_datasets):
    ds = datasets.tuxpaint(datasets_dir=DATASETS_DIR)
    counts = Counter(ds.labels)
    assert len(counts) >= 20 and min(counts.values()) >= 10
    assert "animals-birds" in counts and all("/" not in c for c in counts)
    assert all(p.suffix == ".png" for p in ds.paths)
    # Alpha is flattened on white: stamp corners are transparent in the files.
    bird = ds.image(ds.labels.index("animals-birds"))
    assert bird.mode == "RGB" and bird.getpixel((0, 0)) == (255, 255, 255)


def test_image_folder(demo_dir, tmp_path):
    ds = datasets.image_folder(demo_dir)
    assert len(ds) == 187 and len(ds.classes) == 10 and ds.name == "demo"
    assert ds.image(0).mode == "RGB"
    # A class with too few images is left out; fewer than 2 classes is an error.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for i, src in enumerate(sorted((demo_dir / "birds").glob("*.png"))[:3]):
        (tmp_path / "a" / f"{i}.png").write_bytes(src.read_bytes())
    (tmp_path / "b" / "0.png").write_bytes(src.read_bytes())
    with pytest.raises(LookalikeError, match="at least 2 class folders"):
        datasets.image_folder(tmp_path)
    with pytest.raises(LookalikeError, match="neither a folder"):
        datasets.open_dataset(tmp_path / "missing")


def test_stratified_split_is_seeded_disjoint_and_stratified():
    labels = ["a"] * 10 + ["b"] * 6 + ["c"] * 2 + ["d"]
    train, test = datasets.stratified_split(labels, 0.5, seed=1)
    assert set(train).isdisjoint(test) and sorted([*train, *test]) == list(range(len(labels)))
    by = Counter(labels[i] for i in test)
    assert by == {"a": 5, "b": 3, "c": 1}  # the single "d" stays in train
    again = datasets.stratified_split(labels, 0.5, seed=1)
    assert all((x == y).all() for x, y in zip((train, test), again))
    assert not (datasets.stratified_split(labels, 0.5, seed=2)[1] == test).all()
    with pytest.raises(ConfigError):
        datasets.stratified_split(labels, 1.0, seed=0)


def test_class_split_and_sample():
    labels = [f"c{i}" for i in range(10) for _ in range(3)]
    seen, unseen = datasets.class_split(labels, 0.3, seed=0)
    assert len(unseen) == 3 and len(seen) == 7 and not set(seen) & set(unseen)
    assert datasets.class_split(labels, 0.3, seed=0) == (seen, unseen)
    rows = datasets.indices_of(labels, unseen)
    assert len(rows) == 9 and {labels[i] for i in rows} == set(unseen)
    sample = datasets.stratified_sample(labels, 10, seed=0)
    assert len(sample) == 10 and len({labels[i] for i in sample}) == 10


def test_export_images_round_trips_through_a_folder(demo_dir, tmp_path):
    ds = datasets.image_folder(demo_dir)
    small = ds.subset(datasets.stratified_sample(ds.labels, 40, seed=0))
    assert min(Counter(small.labels).values()) >= 2
    assert datasets.export_images(small, tmp_path) == len(small)
    assert datasets.export_images(small, tmp_path) == 0  # already there
    back = datasets.image_folder(tmp_path)
    assert sorted(back.labels) == sorted(small.labels)
