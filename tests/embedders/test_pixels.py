"""Which Pillow prepares the pixels is part of the model fingerprint (Pillow-SIMD rounds differently)."""

from __future__ import annotations

import logging
from importlib import metadata
from types import SimpleNamespace

import PIL

from lookalike.embedders import preprocess
from lookalike.embedders.onnx import pixels_mark, run_suffix
from lookalike.search.compat import check_compatible


def _version(answers: dict):
    def version(name):
        if name not in answers:
            raise metadata.PackageNotFoundError(name)
        return answers[name]
    return version


def test_pillow_simd_is_seen_only_when_it_owns_the_imported_pil(monkeypatch):
    monkeypatch.setattr(metadata, "version", _version({"pillow-simd": PIL.__version__}))
    assert preprocess._pixels() == "pillow-simd"
    # Pillow reinstalled over Pillow-SIMD's files: its dist-info remains, the imported PIL is Pillow's.
    monkeypatch.setattr(metadata, "version", _version({"pillow-simd": "0.0.0.post0", "pillow": PIL.__version__}))
    assert preprocess._pixels() == "pillow"
    monkeypatch.setattr(metadata, "version", _version({"pillow": PIL.__version__}))
    assert preprocess._pixels() == "pillow"


def test_pixel_marks_keep_old_fingerprints_and_tell_every_pair_apart():
    assert pixels_mark("pillow") == ""  # indexes made before the mark existed keep matching
    runs = [(e, p) for e in ("onnxruntime", "openvino") for p in ("fp32", "int8", "bf16", "int8-bf16", "int8-w7")]
    marks = {pixels_mark(px) + run_suffix(*run) for px in ("pillow", "pillow-simd") for run in runs}
    assert len(marks) == 2 * len(runs)


def test_the_embedder_fingerprint_names_this_process_pillow(embedder):
    base = embedder.fingerprint_with("pillow")
    assert embedder.fingerprint == embedder.fingerprint_with(preprocess.PIXELS)
    simd = embedder.fingerprint_with("pillow-simd")
    assert simd != base and simd.startswith(base.split("@")[0] + "+pillow-simd")
    assert simd.endswith(run_suffix(embedder.engine, embedder.precision))


def test_an_index_from_the_other_pillow_is_searched_with_a_warning(caplog):
    model = {"name": "m", "dim": 4, "fingerprint": "abc+pillow-simd@openvino-int8", "engine": "openvino",
             "precision": "int8"}
    index = SimpleNamespace(dim=4, model=model)
    embedder = SimpleNamespace(name="m", dim=4, engine="openvino", precision="int8", fingerprint="abc@openvino-int8")
    with caplog.at_level(logging.WARNING, logger="lookalike.search.compat"):
        check_compatible(embedder, index)  # not refused: the vectors agree to a cosine of 0.9995
    assert "Pillow-SIMD" in caplog.text and "abc+pillow-simd@openvino-int8" in caplog.text
    embedder.fingerprint = model["fingerprint"]
    caplog.clear()
    check_compatible(embedder, index)
    assert not caplog.text



def test_scaling_into_a_spent_array_gives_the_same_values():
    import numpy as np

    spec = preprocess.PreprocessSpec(resize=292, crop=260, **preprocess.LITE_SCALING)
    rgb = np.random.default_rng(0).integers(0, 256, (260, 260, 3), dtype=np.uint8)
    spent = np.full((3, 260, 260), np.nan, np.float32)
    fresh = preprocess.scale_pixels(rgb, spec)
    assert preprocess.scale_pixels(rgb, spec, spent) is spent and np.array_equal(spent, fresh)
    assert np.array_equal(preprocess.scale_pixels(rgb[..., 0], spec, spent), preprocess.scale_pixels(rgb[..., 0], spec))
    wrong = np.zeros((3, 10, 10), np.float32)  # another shape: not written, a new array instead
    assert preprocess.scale_pixels(rgb, spec, wrong) is not wrong and not wrong.any()


def test_pixels_scaled_inside_openvino_are_marked_and_an_index_from_before_warns(caplog, monkeypatch):
    """OpenVINO takes uint8 pixels and scales them in its graph: vectors within a cosine of 0.998 of
    numpy's scaling, so its fingerprints say ``+u8`` and an OpenVINO index made before warns (not refused)."""
    from lookalike.embedders.onnx import OnnxEmbedder
    from lookalike.embedders.openvino import OpenVinoEmbedder

    assert OnnxEmbedder.input_mark == "" and OpenVinoEmbedder.input_mark == "+u8"
    fake = SimpleNamespace(model_path=None, head_path=None, engine="openvino", precision="int8", input_mark="+u8")
    monkeypatch.setattr("lookalike.embedders.onnx._file_digest", lambda path: "abc")
    assert OnnxEmbedder.fingerprint_with(fake, "pillow") == "abc+u8@openvino-int8"
    assert OnnxEmbedder.fingerprint_with(fake, "pillow-simd") == "abc+pillow-simd+u8@openvino-int8"
    index = SimpleNamespace(dim=4, model={"name": "m", "dim": 4, "fingerprint": "abc@openvino-int8",
                                          "engine": "openvino", "precision": "int8"})
    embedder = SimpleNamespace(name="m", dim=4, engine="openvino", precision="int8", fingerprint="abc+u8@openvino-int8")
    with caplog.at_level(logging.WARNING, logger="lookalike.search.compat"):
        check_compatible(embedder, index)
    assert "+u8" in caplog.text and "abc@openvino-int8" in caplog.text and "re-index" in caplog.text
