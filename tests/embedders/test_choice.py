"""The default engine/precision: the measured fast path only where the CPU makes it safe."""

from __future__ import annotations

import pytest

from lookalike.embedders import choice
from lookalike.embedders.choice import choose_run, cpu_flags, resolve
from lookalike.embedders.onnx import run_suffix

ZEN4 = """processor	: 0
vendor_id	: AuthenticAMD
model name	: AMD EPYC 9R14
flags		: fpu vme sse sse2 avx avx2 avx512f avx512dq avx512_bf16 avx512_vnni avx512_bitalg
bugs		: sysret_ss_attrs
processor	: 1
flags		: fpu vme sse sse2 avx avx2 avx512f avx512dq avx512_bf16 avx512_vnni avx512_bitalg
"""
SKYLAKE = ZEN4.replace(" avx512_bf16 avx512_vnni", "")  # AVX-512 without VNNI
HASWELL = "processor : 0\nflags : fpu sse sse2 avx avx2 fma\n"  # AVX2 only
ALDER_LAKE = "processor : 0\nflags : fpu sse avx avx2 avx_vnni\n"  # VNNI on 256-bit vectors
NEHALEM = "processor : 0\nflags : fpu sse sse2 sse4_2\n"  # no AVX2
SAPPHIRE_RAPIDS = ("processor : 0\nflags : fpu avx2 avx512f avx512_bf16 avx512_vnni amx_bf16 amx_tile amx_int8\n")


def test_cpu_flags_reads_the_first_processor():
    assert {"avx512_vnni", "avx512f", "avx2"} <= cpu_flags(ZEN4)
    assert "avx512_vnni" not in cpu_flags(SKYLAKE)
    assert cpu_flags("no flags line here") == set()


@pytest.mark.parametrize("cpuinfo,machine,openvino,expected", [
    (ZEN4, "x86_64", True, choice.MEASURED_DEFAULT),  # AVX-512 BF16 without AMX: int8
    (SAPPHIRE_RAPIDS, "x86_64", True, choice.MEASURED_AMX),
    (ALDER_LAKE, "x86_64", True, choice.MEASURED_DEFAULT),
    # u8s8 may saturate without VNNI: the half-range int8 file, which cannot
    (SKYLAKE, "x86_64", True, choice.MEASURED_NO_VNNI),
    (HASWELL, "x86_64", True, choice.MEASURED_NO_VNNI),
    (HASWELL, "x86_64", False, ("onnxruntime", "fp32")),  # int8-w7 runs under OpenVINO only
    (NEHALEM, "x86_64", True, ("onnxruntime", "fp32")),  # not measured
    (ZEN4, "aarch64", True, ("onnxruntime", "fp32")),  # not measured
    ("", "arm64", False, ("onnxruntime", "fp32")),
])
def test_fast_path_only_with_vnni_on_x86(cpuinfo, machine, openvino, expected):
    run = choose_run(cpuinfo, machine=machine, openvino=openvino, onnx=True, nncf=True)
    assert (run.engine, run.precision) == expected and run.reason


def test_without_openvino_the_default_is_fp32():
    """ONNX Runtime int8 did not hold the guard, so a missing OpenVINO means fp32, not int8."""
    run = choose_run(ZEN4, machine="x86_64", openvino=False, onnx=True, measured=("openvino", "int8"))
    assert (run.engine, run.precision) == ("onnxruntime", "fp32")
    assert "OpenVINO not installed" in run.reason
    run = choose_run(ZEN4, machine="x86_64", openvino=False, onnx=True, measured=("onnxruntime", "int8"))
    assert (run.engine, run.precision) == ("onnxruntime", "int8")  # a measured ORT default needs no OpenVINO


def test_without_onnx_no_int8_can_be_made():
    run = choose_run(ZEN4, machine="x86_64", openvino=True, onnx=False, measured=("openvino", "int8"))
    assert (run.engine, run.precision) == ("onnxruntime", "fp32") and "lookalike[fast]" in run.reason


def test_without_nncf_a_cpu_without_vnni_stays_fp32():
    """NNCF makes the int8-w7 file; the VNNI path (ONNX Runtime's tooling) does not need it."""
    run = choose_run(HASWELL, machine="x86_64", openvino=True, onnx=True, nncf=False)
    assert (run.engine, run.precision) == ("onnxruntime", "fp32")
    assert "nncf not installed" in run.reason and "lookalike[fast]" in run.reason
    run = choose_run(ZEN4, machine="x86_64", openvino=True, onnx=True, nncf=False)
    assert (run.engine, run.precision) == choice.MEASURED_DEFAULT


def test_resolve_keeps_what_the_user_chose(monkeypatch):
    monkeypatch.setattr(choice, "choose_run", lambda: choice.Run("openvino", "int8", "measured"))
    assert resolve("onnxruntime", "fp32", backbone="efficientnet-lite2", custom=False).precision == "fp32"
    assert (resolve(None, None, backbone="efficientnet-lite2", custom=False).engine) == "openvino"
    # Unmeasured models (a custom file or weights; other backbones) stay fp32 unless asked.
    assert resolve(None, None, backbone="efficientnet-lite2", custom=True).precision == "fp32"
    assert resolve(None, None, backbone="resnet50", custom=False).precision == "fp32"
    # One of the two chosen: the other is filled so the pair can run.
    assert (resolve(None, "bf16", backbone="efficientnet-lite2", custom=False).engine) == "openvino"
    # An engine alone gets its fastest precision that held the quality guard: ONNX Runtime int8 did not.
    assert (resolve("onnxruntime", None, backbone="efficientnet-lite2", custom=False).precision) == "fp32"
    assert (resolve("openvino", None, backbone="efficientnet-lite2", custom=False).precision) == "int8"
    # Only OpenVINO runs int8-bf16; on an AMX CPU it is what OpenVINO named alone runs.
    assert (resolve(None, "int8-bf16", backbone="efficientnet-lite2", custom=False).engine) == "openvino"
    monkeypatch.setattr(choice, "choose_run", lambda: choice.Run("openvino", "int8-bf16", "measured"))
    assert (resolve("openvino", None, backbone="efficientnet-lite2", custom=False).precision) == "int8-bf16"
    assert (resolve("onnxruntime", None, backbone="efficientnet-lite2", custom=False).precision) == "fp32"
    # Without VNNI: OpenVINO named alone runs int8-w7; int8-w7 named alone runs under OpenVINO.
    monkeypatch.setattr(choice, "choose_run", lambda: choice.Run("openvino", "int8-w7", "no VNNI"))
    assert (resolve("openvino", None, backbone="efficientnet-lite2", custom=False).precision) == "int8-w7"
    assert (resolve("onnxruntime", None, backbone="efficientnet-lite2", custom=False).precision) == "fp32"
    monkeypatch.setattr(choice, "choose_run", lambda: choice.Run("onnxruntime", "fp32", "no AVX2"))
    assert (resolve(None, "int8-w7", backbone="efficientnet-lite2", custom=False).engine) == "openvino"
    assert (resolve("openvino", None, backbone="efficientnet-lite2", custom=False).precision) == "fp32"  # no int8 here
    assert (resolve("openvino", None, backbone="efficientnet-lite2", custom=True).precision) == "fp32"


def test_fingerprint_marks_every_run_but_the_historical_one():
    assert run_suffix("onnxruntime", "fp32") == ""  # indexes made before engines existed keep matching
    marks = {run_suffix(e, p) for e in ("onnxruntime", "openvino")
             for p in ("fp32", "int8", "bf16", "int8-bf16", "int8-w7")}
    assert len(marks) == 10


def test_missing_openvino_or_onnx_is_one_line(monkeypatch, tmp_path):
    import sys

    from lookalike.embedders import openvino, quantize
    from lookalike.errors import ConfigError

    monkeypatch.setitem(sys.modules, "openvino", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r"lookalike\[fast\]") as excinfo:
        openvino._openvino()
    assert "\n" not in str(excinfo.value)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ConfigError, match=r"lookalike\[fast\]"):
        quantize._tooling()
    monkeypatch.setitem(sys.modules, "nncf", None)
    with pytest.raises(ConfigError, match=r"NNCF .*lookalike\[fast\]") as excinfo:
        quantize._nncf()
    assert "\n" not in str(excinfo.value)


def test_int8_cache_key_follows_model_calibration_and_method(tmp_path):
    from lookalike.embedders.quantize import cache_key, calibration_files

    model = tmp_path / "m.onnx"
    model.write_bytes(b"model")
    files = calibration_files()
    key = cache_key(model, files)
    assert key == cache_key(model, files) and len(key) == 16
    assert cache_key(model, files[:-1]) != key
    assert cache_key(model, files, "percentile") != key
    assert cache_key(model, files, half_range=True) not in (key, cache_key(model, files, "percentile"))
    model.write_bytes(b"other model")
    assert cache_key(model, files) != key
