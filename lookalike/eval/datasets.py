"""Labelled image collections for evaluation and training, and seeded splits of them.

    fashion-mnist   Debian ``dataset-fashion-mnist``: 28×28 grey IDX files, 10 classes
    tuxpaint        Debian ``tuxpaint-stamps-default``: PNG stamps, one class per folder
                    holding at least 10 of them (alpha flattened on white)
    DIR             any folder of class folders (label = the image's parent folder name,
                    the same rule ``lookalike index`` uses)

Every item has a stable ``key`` (used to cache its features) and a string label; images are
decoded lazily, one at a time, as RGB ``PIL.Image``.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ConfigError, LookalikeError
from ..imaging import decode_image, to_rgb
from ..limits import MAX_IMAGE_PIXELS as MAX_PIXELS

logger = logging.getLogger(__name__)

# Where each Debian package puts its files; `make datasets` unpacks the packages under
# LOOKALIKE_DATASETS_DIR (Settings.datasets_dir) without installing them.
FASHION_MNIST_SUBDIR = "usr/share/datasets/fashion-mnist"
TUXPAINT_SUBDIR = "usr/share/tuxpaint/stamps"
FASHION_MNIST_CLASSES = ("tshirt-top", "trouser", "pullover", "dress", "coat",
                         "sandal", "shirt", "sneaker", "bag", "ankle-boot")
TUXPAINT_MIN_PER_CLASS = 10
BUILTIN = ("fashion-mnist", "tuxpaint")


@dataclass
class LabelledImages:
    """``len(self)`` labelled images; ``image(i)`` decodes item ``i`` as an RGB image."""

    name: str
    keys: list[str]
    labels: list[str]
    loader: Callable[[int], Image.Image]
    paths: list[Path | None]

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))

    def image(self, i: int) -> Image.Image:
        return self.loader(i)

    def subset(self, indices: Sequence[int], name: str | None = None) -> LabelledImages:
        idx = [int(i) for i in indices]
        return LabelledImages(name or self.name, [self.keys[i] for i in idx], [self.labels[i] for i in idx],
                              lambda j, _load=self.loader, _idx=idx: _load(_idx[j]), [self.paths[i] for i in idx])

    def label_array(self) -> np.ndarray:
        return np.asarray(self.labels, dtype=object)


# ----- Fashion-MNIST ---------------------------------------------------------------------
def search_dirs(package: str, subdir: str, datasets_dir: Path | None = None) -> tuple[Path, ...]:
    """Where to look for a dataset package: unpacked under ``datasets_dir``, then installed."""
    unpacked = (Path(datasets_dir) / package / subdir,) if datasets_dir else ()
    return (*unpacked, Path("/") / subdir)


def _find(dirs: Sequence[Path], probe: str, package: str) -> Path:
    for d in dirs:
        if (d / probe).exists():
            return d
    raise ConfigError(f"{package} is not unpacked: run `make datasets` (looked in {', '.join(map(str, dirs))})")


def read_idx(path: Path) -> np.ndarray:
    """Parse a (gzipped) IDX file into a uint8 array of its declared shape."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0:2] != b"\0\0" or data[2] != 0x08:
        raise ConfigError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ConfigError(f"{path}: header says {shape} but holds {body.size} bytes")
    return body.reshape(shape)


def fashion_mnist(split: str = "test", root: Path | None = None, *,
                  datasets_dir: Path | None = None) -> LabelledImages:
    """The official ``train`` (60,000) or ``test`` (10,000) split of Fashion-MNIST."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ConfigError(f"fashion-mnist split must be 'train' or 'test', got {split!r}")
    folder = Path(root) if root else _find(search_dirs("dataset-fashion-mnist", FASHION_MNIST_SUBDIR, datasets_dir),
                                               "t10k-labels-idx1-ubyte.gz", "dataset-fashion-mnist")
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
    if images.ndim != 3 or len(images) != len(labels):
        raise ConfigError(f"{folder}: {prefix} images {images.shape} do not match labels {labels.shape}")

    def load(i: int) -> Image.Image:
        return to_rgb(Image.fromarray(images[i], mode="L"))

    return LabelledImages(f"fashion-mnist-{split}", [f"{prefix}/{i:05d}" for i in range(len(labels))],
                          [FASHION_MNIST_CLASSES[int(c)] for c in labels], load, [None] * len(labels))


# ----- folders ---------------------------------------------------------------------------
def _from_files(name: str, files: list[tuple[Path, str]]) -> LabelledImages:
    keys = []
    for path, _ in files:
        keys.append(hashlib.sha256(path.read_bytes()).hexdigest()[:16])

    def load(i: int) -> Image.Image:
        return decode_image(files[i][0].read_bytes(), max_pixels=MAX_PIXELS)

    return LabelledImages(name, keys, [label for _, label in files], load, [p for p, _ in files])


def tuxpaint(root: Path | None = None, min_per_class: int = TUXPAINT_MIN_PER_CLASS, *,
             datasets_dir: Path | None = None) -> LabelledImages:
    """Tux Paint stamps: classes are the folders holding ``min_per_class`` or more PNGs,
    named by their path under ``stamps/`` joined with '-' (e.g. ``animals-birds``)."""
    base = Path(root) if root else _find(search_dirs("tuxpaint-stamps-default", TUXPAINT_SUBDIR, datasets_dir), "animals",
                                           "tuxpaint-stamps-default")
    files: list[tuple[Path, str]] = []
    for folder in sorted(p for p in base.rglob("*") if p.is_dir()):
        pngs = sorted(f for f in folder.iterdir() if f.suffix.lower() == ".png" and f.is_file())
        if len(pngs) >= min_per_class:
            label = "-".join(folder.relative_to(base).parts)
            files += [(f, label) for f in pngs]
    if not files:
        raise ConfigError(f"{base} has no folder with {min_per_class} or more PNG stamps")
    return _from_files("tuxpaint", files)


def image_folder(root: Path, min_per_class: int = 2) -> LabelledImages:
    """A folder of class folders; classes with fewer than ``min_per_class`` images are left out."""
    from ..index.ingest import label_for, walk_images

    root = Path(root).expanduser()
    if not root.is_dir():
        raise LookalikeError(f"{root} is neither a folder nor a built-in dataset ({', '.join(BUILTIN)})",
                             code="not_a_folder")
    files = [(p, label_for(p)) for p in walk_images(root)]
    counts: dict[str, int] = {}
    for _, label in files:
        counts[label] = counts.get(label, 0) + 1
    small = sorted(c for c, n in counts.items() if n < min_per_class)
    if small:
        logger.warning("leaving out %d classes with fewer than %d images: %s", len(small), min_per_class,
                       ", ".join(small[:10]))
    files = [(p, label) for p, label in files if counts[label] >= min_per_class]
    if len({label for _, label in files}) < 2:
        raise LookalikeError(f"{root} needs at least 2 class folders with {min_per_class}+ images each",
                             code="not_enough_classes")
    return _from_files(root.name, files)


def open_dataset(spec: str | Path, split: str = "all", *, datasets_dir: Path | None = None) -> LabelledImages:
    """A built-in dataset by name (``fashion-mnist`` needs ``split`` train/test) or a folder."""
    if str(spec) == "fashion-mnist":
        return fashion_mnist("test" if split == "all" else split, datasets_dir=datasets_dir)
    if str(spec) == "tuxpaint":
        return tuxpaint(datasets_dir=datasets_dir)
    return image_folder(Path(spec))


# ----- splits ----------------------------------------------------------------------------
def stratified_split(labels: Sequence[str], test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split → ``(train_idx, test_idx)``; every class with 2+ items lands in both,
    a class with one item goes to train."""
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=object)
    train, test = [], []
    for c in sorted(set(labels.tolist())):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * test_fraction))
        n_test = min(max(n_test, 1), len(idx) - 1) if len(idx) > 1 else 0
        test += idx[:n_test].tolist()
        train += idx[n_test:].tolist()
    return np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(test, dtype=np.int64))


def stratified_sample(labels: Sequence[str], n: int, seed: int) -> np.ndarray:
    """About ``n`` indices, each class in proportion to its size (seeded, sorted)."""
    if n >= len(labels):
        return np.arange(len(labels))
    _, picked = stratified_split(labels, n / len(labels), seed)
    return picked


def class_split(labels: Sequence[str], test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded split of the CLASSES → ``(seen, unseen)``, both non-empty."""
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ConfigError("a split by class needs at least 2 classes")
    order = np.random.default_rng(seed).permutation(len(classes))
    n_unseen = min(max(int(round(len(classes) * test_fraction)), 1), len(classes) - 1)
    unseen = sorted(classes[i] for i in order[:n_unseen])
    return [c for c in classes if c not in unseen], unseen


def indices_of(labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    wanted = set(classes)
    return np.asarray([i for i, label in enumerate(labels) if label in wanted], dtype=np.int64)


@dataclass
class Splits:
    """The train split (for fitting heads and classifiers) and the disjoint test split."""

    train: LabelledImages
    test: LabelledImages
    description: str


def train_test(spec: str | Path, *, seed: int = 0, test_fraction: float = 0.5, train_limit: int | None = None,
               test_limit: int | None = None, datasets_dir: Path | None = None) -> Splits:
    """Fashion-MNIST keeps its official split; any other dataset gets a seeded stratified split.
    ``train_limit``/``test_limit`` keep a stratified sample of that many images."""
    if str(spec) == "fashion-mnist":
        train = fashion_mnist("train", datasets_dir=datasets_dir)
        test = fashion_mnist("test", datasets_dir=datasets_dir)
        how = "the official Fashion-MNIST split"
    else:
        whole = open_dataset(spec, datasets_dir=datasets_dir)
        tr, te = stratified_split(whole.labels, test_fraction, seed)
        train, test = whole.subset(tr), whole.subset(te)
        how = f"a stratified split of {len(whole)} images ({test_fraction:.0%} test, seed {seed})"
    n_train, n_test = len(train), len(test)
    if train_limit and train_limit < len(train):
        train = train.subset(stratified_sample(train.labels, train_limit, seed))
    if test_limit and test_limit < len(test):
        test = test.subset(stratified_sample(test.labels, test_limit, seed))
    sample = lambda n, of: f"{n} of {of} images" + (" (a stratified sample)" if n < of else "")  # noqa: E731
    how += f"; train: {sample(len(train), n_train)}, test: {sample(len(test), n_test)}"
    return Splits(train, test, how)


def concat(a: LabelledImages, b: LabelledImages, name: str | None = None) -> LabelledImages:
    """Items of ``a`` then ``b`` (features are cached per source dataset, so concatenate vectors too)."""
    n = len(a)
    return LabelledImages(name or a.name, a.keys + b.keys, a.labels + b.labels,
                          lambda i: a.image(i) if i < n else b.image(i - n), a.paths + b.paths)


def export_images(dataset: LabelledImages, out: Path) -> int:
    """Write every image as ``out/<label>/<key>.png`` so ``lookalike index out`` can ingest it."""
    out = Path(out)
    written = 0
    for i, (key, label) in enumerate(zip(dataset.keys, dataset.labels)):
        target = out / label / (key.replace("/", "-") + ".png")
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        dataset.image(i).save(target)
        written += 1
    return written
