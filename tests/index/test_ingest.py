"""Batch ingest: labels from folders, corrupt files reported and skipped, re-runs skip, prune."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.imaging import decode_image
from lookalike.index.faiss_index import FaissIndex
from lookalike.index.ingest import image_id, ingest_folder, walk_images
from lookalike.search.compat import model_info
from tests.conftest import DEMO_DIR

pytestmark = pytest.mark.slow


@pytest.fixture()
def collection(tmp_path) -> Path:
    """Six real demo images in two classes, plus one corrupt, one truncated and one non-image file."""
    root = tmp_path / "photos"
    for label in ("birds", "fruit"):
        (root / label).mkdir(parents=True)
        for src in sorted((DEMO_DIR / label).glob("*.png"))[:3]:
            shutil.copy(src, root / label / src.name)
    (root / "birds" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    good = (root / "fruit").iterdir().__next__().read_bytes()
    (root / "fruit" / "truncated.png").write_bytes(good[: len(good) // 3])
    (root / "notes.txt").write_text("not an image, not even looked at")
    (root / ".hidden").mkdir()
    Image.new("RGB", (10, 10)).save(root / ".hidden" / "skip.png")
    return root


class Observed:
    """The real embedder, calling ``on_prepare(image)`` / ``on_encode(batch)`` first, in whichever
    thread ingest runs them."""

    def __init__(self, inner, *, on_prepare=None, on_encode=None):
        self.inner, self.name, self.dim, self.spec = inner, inner.name, inner.dim, inner.spec
        self.on_prepare, self.on_encode = on_prepare or (lambda image: None), on_encode or (lambda batch: None)

    def prepare(self, image):
        self.on_prepare(image)
        return self.inner.prepare(image)

    def encode_prepared(self, batch):
        self.on_encode(batch)
        return self.inner.encode_prepared(batch)


def new_index(path: Path, embedder) -> FaissIndex:
    return FaissIndex(path, embedder.dim, model=model_info(embedder))


def test_walk_finds_images_by_extension_sorted(collection):
    (collection / "birds" / "UPPER.JPEG").write_bytes(b"x")
    names = [p.name for p in walk_images(collection)]
    assert "UPPER.JPEG" in names and "notes.txt" not in names and "skip.png" not in names
    assert names == [p.name for p in sorted(walk_images(collection))]


def test_ingest_reports_and_skips_bad_files(collection, embedder, tmp_path):
    index = new_index(tmp_path / "index", embedder)
    report = ingest_folder(collection, index, embedder, batch_size=4, workers=2, progress=False)
    assert report.found == 8 and report.indexed == 6 and report.skipped == 0
    failed = {Path(p).name: reason for p, reason in report.failed}
    assert set(failed) == {"corrupt.jpg", "truncated.png"}
    assert "could not be decoded" in failed["corrupt.jpg"] and "truncated" in failed["truncated.png"]
    assert all(reason for reason in failed.values())
    labels = sorted(meta["label"] for _, meta in index.items())
    assert labels == ["birds"] * 3 + ["fruit"] * 3
    # Saved: a fresh load sees the same entries, ids are content hashes.
    reloaded = FaissIndex.load(tmp_path / "index")
    assert len(reloaded) == 6
    some_file = sorted((collection / "birds").glob("*.png"))[0]
    id_, sha = image_id(some_file.read_bytes())
    assert reloaded.get(id_) == {"path": str(some_file), "label": "birds", "sha256": sha}


def test_rerun_skips_existing_and_adds_new(collection, embedder, tmp_path):
    index = new_index(tmp_path / "index", embedder)
    ingest_folder(collection, index, embedder, progress=False)
    before = index.get_vectors([i for i, _ in index.items()])
    extra = sorted((DEMO_DIR / "fish").glob("*.png"))[0]
    (collection / "fish").mkdir()
    shutil.copy(extra, collection / "fish" / extra.name)
    shutil.copy(extra, collection / "fish" / "copy-of-same-content.png")
    index = FaissIndex.load(tmp_path / "index")
    report = ingest_folder(collection, index, embedder, progress=False)
    assert report.indexed == 1 and report.skipped == 7 and len(report.failed) == 2
    assert len(index) == 7
    np.testing.assert_array_equal(index.get_vectors([i for i, _ in index.items()][:6]), before)


def test_prune_removes_entries_of_deleted_files(collection, embedder, tmp_path):
    index = new_index(tmp_path / "index", embedder)
    ingest_folder(collection, index, embedder, progress=False)
    victim = sorted((collection / "fruit").glob("*.png"))[0]
    victim_id, _ = image_id(victim.read_bytes())
    victim.unlink()
    report = ingest_folder(collection, index, embedder, prune=False, progress=False)
    assert report.pruned == 0 and victim_id in index
    report = ingest_folder(collection, index, embedder, prune=True, progress=False)
    assert report.pruned == 1 and victim_id not in index
    assert victim_id not in FaissIndex.load(tmp_path / "index")


def test_vectors_equal_direct_encoding(collection, embedder, tmp_path):
    """The threaded prepare + batched embed path gives the same vectors as encode()."""
    from lookalike.imaging import decode_image

    index = new_index(tmp_path / "index", embedder)
    ingest_folder(collection, index, embedder, batch_size=2, workers=3, progress=False)
    for id_, meta in index.items():
        image = decode_image(Path(meta["path"]).read_bytes(), max_pixels=10**8)
        np.testing.assert_allclose(index.get_vectors([id_])[0], embedder.encode([image])[0], atol=1e-5)


class Recycling(Observed):
    """The real embedder, noting each ``out`` array ingest hands back to ``prepare``."""

    def __init__(self, inner):
        super().__init__(inner)
        self.given: list[int] = []
        self.made: set[int] = set()

    def prepare(self, image, out=None):
        if out is not None:
            self.given.append(id(out))
        array = self.inner.prepare(image, out=out)
        self.made.add(id(array))
        return array


def test_spent_arrays_are_prepared_into_again_with_the_same_vectors(embedder, tmp_path):
    """Arrays already stacked for the model go back to the preparing threads (no fresh memory an
    image); the vectors are those of encode(), bit for bit, and the arrays stay few."""
    root = tmp_path / "photos" / "mixed"
    root.mkdir(parents=True)
    sources = sorted(DEMO_DIR.rglob("*.png"))[::6][:24]
    for src in sources:
        shutil.copy(src, root / f"{src.parent.name}-{src.name}")
    recycling = Recycling(embedder)
    index = new_index(tmp_path / "index", embedder)
    report = ingest_folder(root.parent, index, recycling, batch_size=4, workers=2, progress=False)
    assert report.indexed == len(sources) and not report.failed
    assert recycling.given and set(recycling.given) <= recycling.made  # only arrays prepare itself made
    assert len(recycling.made) < len(sources)  # reused, not one per image
    for id_, meta in index.items():
        image = decode_image(Path(meta["path"]).read_bytes(), max_pixels=10**8)
        assert np.array_equal(index.get_vectors([id_])[0], embedder.encode([image])[0]), meta["path"]


def test_unreadable_file_is_reported(collection, embedder, tmp_path):
    import os

    if os.geteuid() == 0:
        # root reads any file; a dangling symlink is unreadable for everyone.
        (collection / "birds" / "dangling.png").symlink_to(tmp_path / "missing.png")
    else:
        p = collection / "birds" / "secret.png"
        shutil.copy(sorted((collection / "birds").glob("*.png"))[0], p)
        p.chmod(0)
    index = new_index(tmp_path / "index", embedder)
    report = ingest_folder(collection, index, embedder, progress=False)
    assert any("cannot read" in reason for _, reason in report.failed)
    assert report.indexed == 6


def test_not_a_folder(embedder, tmp_path):
    from lookalike.errors import LookalikeError

    with pytest.raises(LookalikeError, match="not a folder"):
        ingest_folder(tmp_path / "nope", new_index(tmp_path / "i", embedder), embedder, progress=False)


def test_images_are_prepared_in_worker_threads_at_the_callers_priority(collection, embedder, tmp_path):
    """Decoding and preparing run in the worker threads, beside the model, not in the calling
    thread; at the caller's priority (niced, they ran only while the model idled: demo ingest
    1.055-1.064x at equal priority, docs/BENCHMARKS.md)."""
    seen: dict[int, int] = {}

    def record_priority(image):
        tid = threading.get_native_id()
        seen[tid] = os.getpriority(os.PRIO_PROCESS, tid) if hasattr(os, "getpriority") else 0

    main_priority = os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) if hasattr(os, "getpriority") else 0
    report = ingest_folder(collection, new_index(tmp_path / "idx", embedder),
                           Observed(embedder, on_prepare=record_priority), workers=2, progress=False)
    assert report.indexed == 6
    assert seen and threading.get_native_id() not in seen
    assert set(seen.values()) == {main_priority}


def test_model_starts_once_a_batch_is_prepared_not_when_the_read_ahead_fills(embedder, tmp_path, monkeypatch):
    """On slow storage the first batch must go to the model as soon as its images are prepared,
    not after the read-ahead window (here 8 images in flight) has filled."""
    import lookalike.index.ingest as ingest

    root = tmp_path / "photos" / "birds"
    root.mkdir(parents=True)
    for src in sorted(DEMO_DIR.rglob("*.png"))[:24]:
        shutil.copy(src, root / src.name)
    read_ids: list[str] = []
    reads_at_encode: list[int] = []

    def slow_read(data: bytes):
        time.sleep(0.03)  # a network drive
        id_, sha = image_id(data)
        read_ids.append(id_)
        return id_, sha

    monkeypatch.setattr(ingest, "image_id", slow_read)
    sizes: list[int] = []

    def on_encode(batch):
        reads_at_encode.append(len(read_ids))
        sizes.append(len(batch))

    report = ingest_folder(root.parent, new_index(tmp_path / "idx", embedder), Observed(embedder, on_encode=on_encode),
                           batch_size=4, workers=2, progress=False)
    assert report.indexed == 24 and sum(sizes) == 24 and max(sizes) <= 4
    # Waiting for the window would mean 8 in flight + 4 taken = 12 files read before the first batch.
    assert reads_at_encode[0] <= 6, reads_at_encode


def test_an_idle_model_takes_a_part_of_a_batch_and_a_busy_one_gets_full_batches(embedder, tmp_path):
    """While the model waits, a quarter batch is worth running (the model runs an image per
    request); while it is busy, images gather into full batches. Every image is embedded once,
    as the same vector the model gives it alone, though the batch arrays are reused."""
    root = tmp_path / "photos" / "birds"
    root.mkdir(parents=True)
    sources = sorted(DEMO_DIR.rglob("*.png"))[:40]
    for src in sources:
        shutil.copy(src, root / src.name)
    sizes: list[int] = []

    def on_encode(batch):
        sizes.append(len(batch))
        time.sleep(0.2)  # a slow model: busy whenever there is a batch for it

    index = new_index(tmp_path / "idx", embedder)
    report = ingest_folder(root.parent, index, Observed(embedder, on_encode=on_encode), batch_size=8, workers=2,
                           progress=False)
    assert report.indexed == 40 and sum(sizes) == 40
    assert sizes == [2, 8, 8, 8, 8, 6], sizes  # a quarter batch to start, then full ones, then the rest
    # Reused arrays never overwrite a batch the model has not finished: each vector is its image's own.
    ids = [image_id((root / src.name).read_bytes())[0] for src in sources]
    expected = embedder.encode([decode_image((root / src.name).read_bytes(), max_pixels=10**8) for src in sources])
    np.testing.assert_allclose(index.get_vectors(ids), expected, atol=1e-5)


def test_checkpoints_hold_exact_multiples_however_batches_are_cut(embedder, tmp_path, monkeypatch):
    """Quarter batches must not push a checkpoint past its mark: every save but the last holds
    exactly a multiple of ``checkpoint_every`` new images (what an interrupted run keeps)."""
    root = tmp_path / "photos" / "birds"
    root.mkdir(parents=True)
    for src in sorted(DEMO_DIR.rglob("*.png"))[:30]:
        shutil.copy(src, root / src.name)
    import lookalike.index.ingest as ingest

    saved: list[int] = []
    real_save = ingest._save
    monkeypatch.setattr(ingest, "_save", lambda index, report: (saved.append(len(index)), real_save(index, report)))
    sizes: list[int] = []

    def on_encode(batch):
        sizes.append(len(batch))
        time.sleep(0.1)

    index = new_index(tmp_path / "idx", embedder)
    ingest_folder(root.parent, index, Observed(embedder, on_encode=on_encode), batch_size=8, workers=2,
                  checkpoint_every=8, progress=False)
    assert min(sizes) < 8  # the idle model did take part batches
    assert saved == [8, 16, 24, 30], (saved, sizes)


def test_the_model_runs_in_its_own_thread_one_batch_at_a_time_while_the_next_is_made(embedder, tmp_path,
                                                                                     monkeypatch):
    """Batches go to one model thread (never two at once, so the engine keeps its own threads);
    the caller stacks the next batch meanwhile, so a queued batch is waiting when one ends."""
    root = tmp_path / "photos" / "birds"
    root.mkdir(parents=True)
    for src in sorted(DEMO_DIR.rglob("*.png"))[:20]:
        shutil.copy(src, root / src.name)
    busy, threads, queued_at_start = threading.Lock(), set(), []

    def on_encode(batch):
        assert busy.acquire(blocking=False), "two batches in the model at once"
        threads.add(threading.current_thread().name)
        time.sleep(0.2)  # a slow model: the next batches are prepared and queued meanwhile
        queued_at_start.append(model_queue())
        busy.release()

    import lookalike.index.ingest as ingest

    pools = []
    real_executor = ingest.ThreadPoolExecutor

    def executor(*args, **kwargs):
        pools.append(real_executor(*args, **kwargs))
        return pools[-1]

    def model_queue() -> int:
        return next(p for p in pools if p._thread_name_prefix == "model")._work_queue.qsize()

    monkeypatch.setattr(ingest, "ThreadPoolExecutor", executor)
    report = ingest_folder(root.parent, new_index(tmp_path / "idx", embedder),
                           Observed(embedder, on_encode=on_encode), batch_size=4, workers=2, progress=False)
    assert report.indexed == 20
    assert len(threads) == 1 and next(iter(threads)).startswith("model")
    assert max(queued_at_start[:-1]) >= 1, queued_at_start  # the next batch waited behind the running one


def entries_by_path(index) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for id_, meta in index.items():
        out.setdefault(meta["path"], []).append(id_)
    return out


def other_image() -> Path:
    return sorted((DEMO_DIR / "planets").glob("*.png"))[0]  # not in the collection


def test_a_file_edited_in_place_replaces_its_entry(collection, embedder, tmp_path):
    index = new_index(tmp_path / "index", embedder)
    ingest_folder(collection, index, embedder, progress=False)
    edited = sorted((collection / "birds").glob("*.png"))[0]
    old_id, _ = image_id(edited.read_bytes())
    edited.write_bytes(other_image().read_bytes())
    new_id, _ = image_id(edited.read_bytes())
    report = ingest_folder(collection, index, embedder, progress=False)  # no --prune needed
    assert entries_by_path(index)[str(edited)] == [new_id] and old_id not in index
    assert len(index) == 6 and len(FaissIndex.load(tmp_path / "index")) == 6
    assert (report.indexed, report.replaced, report.moved) == (1, 1, 0)


def test_an_edited_duplicate_leaves_the_content_to_the_other_file(collection, embedder, tmp_path):
    """Two files with one content share one entry; editing the file it names moves it to the other."""
    first = sorted((collection / "birds").glob("*.png"))[0]
    twin = collection / "fruit" / "twin.png"
    shutil.copy(first, twin)
    index = new_index(tmp_path / "index", embedder)
    report = ingest_folder(collection, index, embedder, progress=False)
    shared, _ = image_id(first.read_bytes())
    assert report.indexed == 6 and report.skipped == 1 and index.get(shared)["path"] == str(first)
    first.write_bytes(other_image().read_bytes())
    report = ingest_folder(collection, index, embedder, progress=False)
    assert index.get(shared) == {"path": str(twin), "label": "fruit", "sha256": index.get(shared)["sha256"]}
    assert [len(ids) for ids in entries_by_path(index).values()] == [1] * 7
    vectors = FaissIndex.load(tmp_path / "index").get_vectors([shared])
    np.testing.assert_array_equal(vectors, index.get_vectors([shared]))  # moved, not re-embedded
    assert (report.indexed, report.moved, report.replaced) == (1, 1, 0)


def test_a_renamed_file_keeps_its_entry_with_prune(collection, embedder, tmp_path):
    index = new_index(tmp_path / "index", embedder)
    ingest_folder(collection, index, embedder, progress=False)
    src = sorted((collection / "birds").glob("*.png"))[0]
    id_, _ = image_id(src.read_bytes())
    dst = collection / "fruit" / "renamed.png"
    src.rename(dst)
    report = ingest_folder(collection, index, embedder, prune=True, progress=False)
    assert id_ in index, "pruned, though its content is still in the folder"
    assert index.get(id_)["path"] == str(dst) and index.get(id_)["label"] == "fruit"
    assert FaissIndex.load(tmp_path / "index").get(id_)["path"] == str(dst)
    assert (report.indexed, report.moved, report.pruned) == (0, 1, 0)


def test_prune_removes_content_no_file_has_any_more(collection, embedder, tmp_path):
    twin = collection / "birds" / "twin.png"
    shutil.copy(sorted((collection / "fruit").glob("*.png"))[0], twin)
    index = new_index(tmp_path / "index", embedder)
    ingest_folder(collection, index, embedder, progress=False)
    twin_id, _ = image_id(twin.read_bytes())
    twin.unlink()  # its content is still in fruit/: not pruned
    gone = sorted((collection / "birds").glob("*.png"))[0]
    gone_id, _ = image_id(gone.read_bytes())
    gone.unlink()
    report = ingest_folder(collection, index, embedder, prune=True, progress=False)
    assert report.pruned == 1 and gone_id not in index and twin_id in index
    assert sorted(entries_by_path(index)) == sorted(str(p) for p in walk_images(collection)
                                                    if p.suffix == ".png" and p.name != "truncated.png")


@pytest.mark.parametrize("prune", [False, True])
def test_rerunning_on_an_unchanged_folder_changes_nothing(collection, embedder, tmp_path, prune):
    shutil.copy(sorted((collection / "fruit").glob("*.png"))[0], collection / "birds" / "twin.png")
    index = new_index(tmp_path / "index", embedder)
    ingest_folder(collection, index, embedder, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "index").iterdir()}
    entries = dict(index.items())
    for _ in range(2):
        index = FaissIndex.load(tmp_path / "index")
        report = ingest_folder(collection, index, embedder, prune=prune, progress=False)
        assert (report.indexed, report.pruned, report.to_dict().get("moved", 0)) == (0, 0, 0)
        assert dict(index.items()) == entries
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "index").iterdir()} == before  # not even saved


@pytest.mark.timeout(120)
def test_special_files_are_skipped_without_opening_them(collection, embedder, tmp_path):
    """A FIFO named like an image used to block the ingest forever (waiting for a writer)."""
    os.mkfifo(collection / "birds" / "pipe.png")
    (collection / "fruit" / "null.png").symlink_to(os.devnull)
    index = new_index(tmp_path / "index", embedder)
    report = ingest_folder(collection, index, embedder, progress=False)
    failed = {Path(p).name: reason for p, reason in report.failed}
    assert failed["pipe.png"] == "cannot read: not a regular file (a FIFO)"
    assert failed["null.png"] == "cannot read: not a regular file (a character device)"
    assert report.indexed == 6
