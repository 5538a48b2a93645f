"""`lookalike search --id` and `lookalike dupes` on a small folder with a known copy and a resized copy."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest
from PIL import Image

from lookalike.imaging import to_rgb

from lookalike import cli

pytestmark = pytest.mark.slow  # embeds with the real model


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, demo_dir):
    root = tmp_path_factory.mktemp("photos")
    for label in ("planets", "roadsigns"):
        (root / label).mkdir()
        for path in sorted((demo_dir / label).glob("*.png"))[:4]:
            shutil.copy(path, root / label / path.name)
    original = sorted((root / "planets").glob("*.png"))[0]
    shutil.copy(original, root / "roadsigns" / "copy-of-a-planet.png")
    with Image.open(original) as im:  # flattened on white like the index sees it, then made smaller
        to_rgb(im).resize((im.width * 2 // 3, im.height * 2 // 3)).save(root / "planets" / "smaller.jpg",
                                                                               quality=90)
    index_dir = tmp_path_factory.mktemp("index")
    assert cli.main(["index", str(root), "--index-dir", str(index_dir), "--quiet"]) == 0
    return root, index_dir, original


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_search_by_id(indexed, capsys):
    _, index_dir, original = indexed
    code, out, _ = run(capsys, "search", original, "--index-dir", index_dir, "--json", "-k", "1")
    query_id = json.loads(out)["results"][0]["id"]
    code, out, _ = run(capsys, "search", "--id", query_id, "--index-dir", index_dir, "--json", "-k", "3")
    ids = [r["id"] for r in json.loads(out)["results"]]
    assert code == 0 and len(ids) == 3 and query_id not in ids
    code, _, err = run(capsys, "search", "--id", "0000000000000000", "--index-dir", index_dir)
    assert code == 1 and err.startswith("lookalike: error: No image with id") and len(err.splitlines()) == 1
    code, _, err = run(capsys, "search", original, "--id", query_id, "--index-dir", index_dir)
    assert code == 1 and "not both" in err


def test_dupes_as_json_csv_and_text(indexed, capsys):
    _, index_dir, original = indexed
    code, out, _ = run(capsys, "dupes", "--index-dir", index_dir, "--json")
    body = json.loads(out)
    assert code == 0 and body["groups"][0]["kind"] == "exact"
    exact = {m["path"].rsplit("/", 1)[-1] for m in body["groups"][0]["members"]}
    assert exact == {original.name, "copy-of-a-planet.png"}
    near = [g for g in body["groups"] if g["kind"] == "near"]
    assert any({m["path"].rsplit("/", 1)[-1] for m in g["members"]} == {original.name, "smaller.jpg"} for g in near)
    code, out, _ = run(capsys, "dupes", "--index-dir", index_dir, "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and {r["kind"] for r in rows} == {"exact", "near"} and all(0 < float(r["score"]) <= 1 for r in rows)
    code, out, _ = run(capsys, "dupes", "--index-dir", index_dir, "--threshold", "0.9999")
    assert code == 0 and "1 groups at threshold 0.9999" in out  # only the exact copy is left
    code, _, err = run(capsys, "dupes", "--index-dir", index_dir, "--threshold", "2")
    assert code == 1 and "--threshold" in err
