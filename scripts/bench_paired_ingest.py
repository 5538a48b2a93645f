"""Paired fresh-process `lookalike index` runs of two environments, alternating A/B and B/A.

Usage: python scripts/bench_paired_ingest.py --b PYTHONPATH=/opt/pillow-simd [--a KEY=VALUE ...]
       [--root-a OTHER_CHECKOUT] [--pairs 10] [--folder data/demo] [-- extra `lookalike index` flags, e.g. --engine openvino]

What changes between A and B is the environment (a PYTHONPATH with another Pillow, a malloc
tunable, ...) or the checkout the code runs from (``--root-a`` a worktree of the commit before). These machines drift 10-25% within seconds, so each pair runs back to back and the
result is the median of the B/A ratios, not a ratio of medians. Before the runs, each environment's
preprocessing CPU per image is timed on the folder's images (best of 5): decode, resize+crop, the
whole prepare. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STAGES = """
import json, sys, time
from pathlib import Path
import PIL
from lookalike.embedders.backbones import get_backbone
from lookalike.embedders.preprocess import PIXELS, resize_and_crop, to_array
from lookalike.imaging import decode_image
from lookalike.index.ingest import walk_images
spec = get_backbone("efficientnet-lite2").spec
datas = [p.read_bytes() for p in walk_images(Path(sys.argv[1]))]
images = [decode_image(d, max_pixels=10**8, grey=True) for d in datas]
def best(f):
    times = []
    for _ in range(5):
        t = time.process_time(); f(); times.append(time.process_time() - t)
    return round(min(times) / len(datas) * 1000, 3)
print(json.dumps({"pil": PIL.__version__, "pixels": PIXELS,
                  "decode_ms": best(lambda: [decode_image(d, max_pixels=10**8, grey=True) for d in datas]),
                  "resize_ms": best(lambda: [resize_and_crop(im, spec) for im in images]),
                  "prepare_ms": best(lambda: [to_array(im, spec) for im in images])}))
"""


def _env(pairs: list[str]) -> dict:
    env = dict(os.environ)
    for pair in pairs:
        key, _, value = pair.partition("=")
        env[key] = value
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", action="append", default=[], metavar="KEY=VALUE", help="environment of A")
    parser.add_argument("--b", action="append", default=[], metavar="KEY=VALUE", help="environment of B")
    parser.add_argument("--root-a", type=Path, default=ROOT, help="checkout A runs from (default: this one)")
    parser.add_argument("--root-b", type=Path, default=ROOT, help="checkout B runs from, e.g. a git worktree")
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--folder", type=Path, default=ROOT / "data" / "demo")
    parser.add_argument("index_args", nargs="*", help="after --: more `lookalike index` flags")
    args = parser.parse_args()
    envs = {"a": _env(args.a), "b": _env(args.b)}
    # `python -m` puts the working directory first on sys.path: each side runs its own checkout's code.
    roots = {"a": args.root_a.resolve(), "b": args.root_b.resolve()}
    result: dict = {"a": args.a, "b": args.b, "root_a": str(roots["a"]), "root_b": str(roots["b"]),
                    "index_args": args.index_args, "load_before": os.getloadavg()}
    for name, env in envs.items():
        out = subprocess.run([sys.executable, "-c", STAGES, str(args.folder.resolve())], env=env,
                             cwd=roots[name], capture_output=True, text=True, check=True).stdout
        result[f"stages_{name}"] = json.loads(out)
    runs: dict[str, list[float]] = {"a": [], "b": []}
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp) / "index"
        for i in range(args.pairs):
            for name in ("a", "b") if i % 2 == 0 else ("b", "a"):
                shutil.rmtree(index_dir, ignore_errors=True)
                out = subprocess.run([sys.executable, "-m", "lookalike.cli", "index", str(args.folder.resolve()),
                                      "--index-dir", str(index_dir), "--json", "--quiet", *args.index_args],
                                     env=envs[name], cwd=roots[name], capture_output=True, text=True,
                                     check=True).stdout
                runs[name].append(json.loads(out)["images_per_second"])
    ratios = [b / a for a, b in zip(runs["a"], runs["b"])]
    result.update({"img_per_s_a": runs["a"], "img_per_s_b": runs["b"], "paired_ratios_b_over_a": ratios,
                   "median_ratio_b_over_a": statistics.median(ratios),
                   "median_a": statistics.median(runs["a"]), "median_b": statistics.median(runs["b"]),
                   "load_after": os.getloadavg()})
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
