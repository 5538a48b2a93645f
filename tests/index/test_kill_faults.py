"""SIGKILL a real `lookalike index` before, during and after its checkpoints: the index always
loads with consistent counts, a re-run ends at exactly the right count, and no temp files or
stale generations remain.

The kills are exact: the process runs the real CLI with a hook that SIGKILLs it at a chosen
step of its Nth save (before it, with a half-written temp file, before or after the manifest
is replaced). One more kill comes from outside, at whatever the process is doing when a
checkpoint has just landed.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import faiss
import pytest

from lookalike.index.faiss_index import MANIFEST, FaissIndex
from lookalike.index.ingest import image_id
from tests.conftest import ROOT, command_env, demo_images

pytestmark = pytest.mark.slow

N_IMAGES, CHECKPOINT = 40, 8

KILL_AT = r"""
import os, signal, sys
from lookalike.index import faiss_store
from lookalike.index.faiss_index import FaissIndex

point, nth = sys.argv[1], int(sys.argv[2])
saves = 0
real_save, real_replace, real_write = FaissIndex.save, os.replace, faiss_store.write_structure

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def save(self):
    global saves
    saves += 1
    if point == "before-save" and saves == nth:
        die()
    return real_save(self)

def replace(src, dst, *args, **kwargs):
    name = os.path.basename(dst)
    if saves == nth and (point, name.split("-")[0]) in {("index-written", "index"),
                                                        ("before-manifest", "manifest.json")}:
        die()
    real_replace(src, dst, *args, **kwargs)
    if saves == nth and point == "after-manifest" and name == "manifest.json":
        die()

def torn_write(fh, structure):
    if saves == nth and point == "torn-index":
        fh.write(b"IxF2 half a header")
        fh.flush()
        die()
    return real_write(fh, structure)

FaissIndex.save, os.replace, faiss_store.write_structure = save, replace, torn_write
from lookalike.cli import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for src in demo_images()[::4][:N_IMAGES]:  # every 4th: several classes
        (root / src.parent.name).mkdir(exist_ok=True)
        shutil.copy(src, root / src.parent.name / src.name)
    return root


def expected_entries(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*.png")):
        out.setdefault(image_id(path.read_bytes())[0], str(path))
    return out


def index_argv(photos: Path, index_dir: Path) -> list[str]:
    return ["index", str(photos), "--index-dir", str(index_dir), "--quiet", "--json"]


def env() -> dict:
    return command_env({"LOOKALIKE_BATCH_SIZE": str(CHECKPOINT), "LOOKALIKE_CHECKPOINT_EVERY": str(CHECKPOINT),
                        "LOOKALIKE_WORKERS": "1", "LOOKALIKE_THREADS": "1"})


def killed_at(point: str, nth: int, photos: Path, index_dir: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", KILL_AT, point, str(nth), *index_argv(photos, index_dir)],
                          capture_output=True, text=True, env=env(), cwd=ROOT, timeout=300)
    assert proc.returncode == -signal.SIGKILL, f"{point}#{nth} was never reached: {proc.returncode}\n{proc.stderr}"


def consistent_count(index_dir: Path, expected: dict[str, str]) -> int:
    """The saved entries (0 when nothing was saved yet), after checking they agree everywhere."""
    if not (index_dir / MANIFEST).exists():
        return 0
    index = FaissIndex.load(index_dir)  # refuses any disagreement between manifest and files
    manifest = json.loads((index_dir / MANIFEST).read_text())
    structure = faiss.read_index(str(index_dir / manifest["files"]["index"]))
    records = [r for r in json.loads((index_dir / manifest["files"]["metadata"]).read_text()) if r is not None]
    assert manifest["count"] == len(index) == structure.ntotal == len(records)
    assert len(index) % CHECKPOINT == 0  # only whole checkpoints are ever saved
    assert {id_: meta["path"] for id_, meta in index.items()}.items() <= expected.items()
    return len(index)


def test_sigkill_around_checkpoints_never_breaks_the_index(photos, tmp_path):
    index_dir = tmp_path / "idx"
    expected = expected_entries(photos)
    assert len(expected) == N_IMAGES

    killed_at("before-save", 1, photos, index_dir)  # first batch embedded, never saved
    assert consistent_count(index_dir, expected) == 0

    killed_at("torn-index", 1, photos, index_dir)  # dies halfway through writing a temp file
    assert consistent_count(index_dir, expected) == 0
    assert list(index_dir.glob(".index-*.tmp"))  # the leftover the next save must remove

    killed_at("before-manifest", 2, photos, index_dir)  # generation 2 written, manifest still at 1
    assert consistent_count(index_dir, expected) == CHECKPOINT
    assert (index_dir / "index-000002.faiss").exists() and not list(index_dir.glob(".index-*.tmp"))

    killed_at("index-written", 1, photos, index_dir)  # complete temp file, never renamed
    assert consistent_count(index_dir, expected) == CHECKPOINT

    killed_at("after-manifest", 1, photos, index_dir)  # saved; the old generation not yet removed
    assert consistent_count(index_dir, expected) == 2 * CHECKPOINT

    # From outside, at whatever the process is doing once its first checkpoint has landed.
    proc = subprocess.Popen([sys.executable, "-m", "lookalike.cli", *index_argv(photos, index_dir)], env=env(),
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    generation = json.loads((index_dir / MANIFEST).read_text())["generation"]
    while json.loads((index_dir / MANIFEST).read_text())["generation"] == generation:
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    saved = consistent_count(index_dir, expected)
    assert saved >= 3 * CHECKPOINT

    done = subprocess.run([sys.executable, "-m", "lookalike.cli", *index_argv(photos, index_dir)],
                          capture_output=True, text=True, env=env(), cwd=ROOT, timeout=300, check=True)
    report = json.loads(done.stdout)
    assert report["indexed"] == N_IMAGES - saved and not report["failed"]
    assert consistent_count(index_dir, expected) == N_IMAGES
    assert {id_: m["path"] for id_, m in FaissIndex.load(index_dir).items()} == expected
    generation = json.loads((index_dir / MANIFEST).read_text())["generation"]
    assert sorted(p.name for p in index_dir.iterdir()) == sorted(
        [".ingest.lock", ".lock", MANIFEST, f"metadata-{generation:06d}.json", f"index-{generation:06d}.faiss"])
