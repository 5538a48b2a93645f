"""The `lookalike` CLI end to end in subprocesses: index, search, info, delete, one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import DEMO_DIR, ROOT, command_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # starts real servers on 127.0.0.1


def run(*args, check=True):
    env = command_env()
    proc = subprocess.run([sys.executable, "-m", "lookalike.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)
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
