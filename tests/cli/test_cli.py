"""The `lookalike` CLI end to end in subprocesses: index, search, info, delete, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import DEMO_DIR, ROOT, command_env, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # starts real servers on 127.0.0.1


def run(*args, check=True, timeout=600):
    env = command_env()
    proc = subprocess.run([sys.executable, "-m", "lookalike.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for label in ("birds", "planets", "tools"):
        shutil.copytree(DEMO_DIR / label, root / label)
    (root / "planets" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return root


def test_index_search_info_delete(photos, tmp_path):
    index_dir = tmp_path / "idx"
    first = run("index", photos, "--index-dir", index_dir, "--json")
    report = json.loads(first.stdout)
    n = sum(1 for p in photos.rglob("*.png")) - 1
    assert report["indexed"] == n and report["skipped"] == 0
    assert [f["path"].endswith("broken.png") for f in report["failed"]] == [True]

    again = run("index", photos, "--index-dir", index_dir)
    assert f"indexed 0, skipped {n}" in again.stdout and "failed 1" in again.stdout and "broken.png" in again.stdout

    query = sorted((photos / "planets").glob("*.png"))[0]
    out = json.loads(run("search", query, "-k", "3", "--index-dir", index_dir, "--json").stdout)
    assert len(out["results"]) == 3 and out["results"][0]["label"] == "planets"
    assert out["results"][0]["path"] == str(query) and out["results"][0]["score"] > 0.999
    table = run("search", query, "-k", "2", "--index-dir", index_dir, "--label", "tools").stdout
    rows = [line.split() for line in table.splitlines()[1:] if line.strip() and line.split()[0].isdigit()]
    assert [row[2] for row in rows] == ["tools", "tools"]

    info = json.loads(run("info", "--index-dir", index_dir).stdout)
    assert info["count"] == n and info["labels"]["birds"] == 35 and info["structure"] == "flat"
    assert info["search"] == {}  # exact: no breadth to choose

    deleted = run("delete", out["results"][0]["id"], "--index-dir", index_dir)
    assert "deleted 1 of 1" in deleted.stdout
    assert json.loads(run("info", "--index-dir", index_dir).stdout)["count"] == n - 1


@pytest.mark.parametrize("args,fragment", [
    (["search", "{img}", "--index-dir", "{tmp}/none"], "No index at"),
    (["search", "{tmp}/missing.jpg", "--index-dir", "{tmp}"], "cannot read"),
    (["index", "{tmp}/not-here", "--index-dir", "{tmp}/i"], "is not a folder"),
    (["index", "{tmp}", "--backbone", "vgg", "--index-dir", "{tmp}/i"], "unknown backbone"),
])
def test_errors_are_one_line(tmp_path, args, fragment):
    img = next(DEMO_DIR.rglob("*.png"))
    proc = run(*[a.format(tmp=tmp_path, img=img) for a in args], check=False)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("lookalike: error:") and fragment in lines[-1], proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_query_image_is_one_line(tmp_path, photos):
    index_dir = tmp_path / "idx"
    run("index", photos / "birds", "--index-dir", index_dir, "--quiet")
    bad = tmp_path / "q.jpg"
    bad.write_text("no")
    proc = run("search", bad, "--index-dir", index_dir, check=False)
    assert proc.returncode == 1 and "not a recognised image" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("search", next(photos.rglob("*.png")), "-k", "0", "--index-dir", index_dir, check=False)
    assert proc.returncode == 1 and "1..100" in proc.stderr


def test_help_is_light():
    code = ("import sys; from lookalike.cli import build_parser; build_parser(); "
            "heavy = [m for m in ('torch', 'onnxruntime', 'faiss', 'fastapi', 'numpy') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def one_line_error(proc) -> str:
    """The error line of a failed command, checking it is the only thing it says about the failure."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lookalike: error: "), proc.stderr
    return lines[0]


def small_index(path, n: int = 3):
    """A FAISS index of ``n`` made-up entries (commands that never embed need no real model)."""
    import numpy as np

    from lookalike.index.faiss_index import FaissIndex

    index = FaissIndex(path, 8, model={"name": "efficientnet-lite2", "dim": 8})
    index.add([f"id{i}" for i in range(n)], np.eye(n, 8, dtype=np.float32), [{"label": "x"}] * n)
    index.save()
    return index


def writer_lock_held(path) -> bool:
    """Whether some process holds a flock on ``path`` (read from /proc/locks: never takes it)."""
    inode = path.stat().st_ino
    return any(line.split()[1] == "FLOCK" and line.split()[5].endswith(f":{inode}")
               for line in open("/proc/locks") if len(line.split()) > 5)


def test_delete_is_refused_while_lookalike_index_runs(tmp_path):
    """`delete` used to report success, then the running `index` saved its own copy over it."""
    index_dir = tmp_path / "idx"
    small = tmp_path / "small" / "birds"
    small.mkdir(parents=True)
    shutil.copy(DEMO_DIR / "birds" / "crow.png", small / "crow.png")
    first = json.loads(run("index", small.parent, "--index-dir", index_dir, "--json", "--quiet").stdout)
    assert first["indexed"] == 1
    from lookalike.index.faiss_index import FaissIndex

    (crow,) = [id_ for id_, _ in FaissIndex.load(index_dir).items()]
    env = command_env({"LOOKALIKE_THREADS": "1", "LOOKALIKE_WORKERS": "1"})  # slower, and kinder to a shared CPU
    ingest = subprocess.Popen([sys.executable, "-m", "lookalike.cli", "index", str(DEMO_DIR), "--index-dir",
                               str(index_dir), "--quiet"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ((index_dir / ".ingest.lock").exists() and writer_lock_held(index_dir / ".ingest.lock")):
            assert ingest.poll() is None and time.monotonic() < deadline, "the index run never took the lock"
            time.sleep(0.05)
        refused = run("delete", crow, "--index-dir", index_dir, check=False)
        assert ingest.poll() is None, "the index run ended before delete ran: the test proved nothing"
        line = one_line_error(refused)
        assert "`lookalike index`" in line and "run `lookalike delete` again when it has finished" in line, line
        assert "deleted" not in refused.stdout
    finally:
        out, err = ingest.communicate(timeout=600)
    assert ingest.returncode == 0, err
    assert crow in FaissIndex.load(index_dir) and len(FaissIndex.load(index_dir)) == 187
    assert "deleted 1 of 1" in run("delete", crow, "--index-dir", index_dir).stdout
    assert crow not in FaissIndex.load(index_dir)


def test_delete_is_refused_while_the_writer_lock_is_held(tmp_path):
    from lookalike.fsutil import file_lock
    from lookalike.index.faiss_index import FaissIndex

    small_index(tmp_path)
    with file_lock(tmp_path / ".ingest.lock"):  # what a running `lookalike index` holds
        line = one_line_error(run("delete", "id1", "--index-dir", tmp_path, check=False))
    assert "again when it has finished" in line
    assert len(FaissIndex.load(tmp_path)) == 3
    assert "deleted 1 of 1; index holds 2" in run("delete", "id1", "--index-dir", tmp_path).stdout


def test_searching_a_fifo_is_a_one_line_error(tmp_path):
    """A FIFO named like an image used to block `search` forever."""
    fifo = tmp_path / "query.png"
    os.mkfifo(fifo)
    try:
        proc = run("search", fifo, "--index-dir", tmp_path / "none", check=False, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("`lookalike search FIFO` hangs")
    assert one_line_error(proc) == f"lookalike: error: cannot read {fifo}: not a regular file (a FIFO)"


@pytest.mark.parametrize("command", ["info", "search", "serve", "delete"])
def test_a_damaged_manifest_is_a_one_line_error(tmp_path, command):
    small_index(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "lookalike-faiss/1", "generation": ')  # torn by hand
    args = {"info": [], "search": [DEMO_DIR / "birds" / "crow.png"], "delete": ["id1"],
            "serve": ["--port", str(free_port())]}[command]
    try:
        proc = run(command, *args, "--index-dir", tmp_path, check=False, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`lookalike {command}` did not stop on a damaged index")
    line = one_line_error(proc)
    assert f"the index in {tmp_path} is damaged: manifest.json is not valid JSON" in line, line


DISK_FULL = """
import errno, os, sys

def full(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

os.fsync = full
from lookalike.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_full_disk_during_index_is_one_line_and_keeps_the_saved_index(tmp_path):
    from lookalike.index.faiss_index import FaissIndex

    photos = tmp_path / "photos" / "birds"
    photos.mkdir(parents=True)
    for src in sorted((DEMO_DIR / "birds").glob("*.png"))[:4]:
        shutil.copy(src, photos / src.name)
    index_dir = tmp_path / "idx"
    run("index", photos.parent, "--index-dir", index_dir, "--quiet")
    before = sorted(p.name for p in index_dir.iterdir())
    for src in sorted((DEMO_DIR / "fish").glob("*.png"))[:3]:
        shutil.copy(src, photos / src.name)
    proc = subprocess.run([sys.executable, "-c", DISK_FULL, "index", str(photos.parent), "--index-dir",
                           str(index_dir), "--quiet"], capture_output=True, text=True, env=command_env(), cwd=ROOT,
                          timeout=600)
    line = one_line_error(proc)
    assert "No space left on device" in line and "the index on disk is unchanged (generation 1)" in line, line
    assert sorted(p.name for p in index_dir.iterdir()) == before  # no temp file, no half generation
    assert len(FaissIndex.load(index_dir)) == 4
