"""scripts/pillow_simd.sh (make pillow-simd): builds Pillow-SIMD for AVX2 into a virtualenv, with the
formats lookalike reads, and lookalike then marks its fingerprints and resizes differently."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # builds Pillow-SIMD from source (PyPI, ~1 minute) unless its wheel is cached

PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np, PIL
from PIL import Image, features
from lookalike.embedders.preprocess import PIXELS, LITE_SCALING, PreprocessSpec, to_array
spec = PreprocessSpec(resize=292, crop=260, **LITE_SCALING)
image = Image.open(sys.argv[2]).convert("RGB")
np.save(sys.argv[3], to_array(image, spec))
print(json.dumps({"pixels": PIXELS, "version": PIL.__version__,
                  "formats": {f: features.check(f) for f in ("jpg", "zlib", "webp", "libtiff")}}))
"""


def _avx2() -> bool:
    try:
        return "avx2" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def _probe(python: Path, out: Path) -> dict:
    image = ROOT / "data" / "demo" / "birds" / "drake.png"
    run = subprocess.run([str(python), "-c", PROBE, str(ROOT), str(image), str(out)], capture_output=True,
                         text=True, check=True)
    return json.loads(run.stdout)


@pytest.mark.skipif(not _avx2(), reason="Pillow-SIMD is built for AVX2 only")
def test_make_pillow_simd_swaps_pillow_and_the_fingerprint_says_so(tmp_path):
    import numpy as np

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "numpy", "pillow"], check=True, capture_output=True)
    before = _probe(venv / "bin" / "python", tmp_path / "pillow.npy")
    assert before["pixels"] == "pillow"
    env = dict(os.environ, PILLOW_SIMD="1")
    subprocess.run(["bash", "scripts/pillow_simd.sh", str(venv)], cwd=ROOT, env=env, check=True)
    after = _probe(venv / "bin" / "python", tmp_path / "simd.npy")
    assert after["pixels"] == "pillow-simd" and after["version"] != before["version"]
    assert all(after["formats"].values()), after["formats"]  # JPEG, PNG, WebP and TIFF still read
    pillow, simd = np.load(tmp_path / "pillow.npy"), np.load(tmp_path / "simd.npy")
    # Other arithmetic, so other pixels; but only by rounding, mostly one level in 255.
    assert not np.array_equal(pillow, simd)
    assert np.mean(np.abs(pillow - simd) * 127.5 > 1.5) < 0.01
    # Run again: nothing to do, the same Pillow-SIMD.
    again = subprocess.run(["bash", "scripts/pillow_simd.sh", str(venv)], cwd=ROOT, env=env, check=True,
                           capture_output=True, text=True)
    assert "building" not in again.stderr and _probe(venv / "bin" / "python", tmp_path / "x.npy") == after
