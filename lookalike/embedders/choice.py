"""Which engine and precision run the model when the user chose neither: the fastest way that
held the quality guard in ``scripts/bench_precision.py`` (docs/BENCHMARKS.md, "Model precision
and engine"), where it is safe on this CPU, else ONNX Runtime fp32.

The int8 file is safe only on x86-64 with VNNI. Without VNNI, ONNX Runtime's u8s8 kernels multiply
with VPMADDUBSW, whose 16-bit intermediate sums can saturate on AVX2/AVX-512 ("When and why do I
need to try U8U8?", https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html);
OpenVINO documents the same overflow on pre-VNNI CPUs
(https://docs.openvino.ai/2023.3/pot_saturation_issue.html). Measured on an AVX2-only AMD EPYC
(Zen 3): the int8 file lost 1.9 points of demo P@2 under ONNX Runtime and 1.3 under OpenVINO
(min cosine to fp32 0.902 / 0.914), where VNNI CPUs lost 0.5-1.1 and 0.7-0.8: both fail the guard
there. So x86 CPUs with AVX2 but no VNNI get int8-w7, NNCF's file whose convolution weights use half
the int8 range so those sums cannot saturate (NNCF's ``OverflowFix``), under OpenVINO, where it held
the guard on that CPU (see ``MEASURED_NO_VNNI``). Where it cannot run (no AVX2, OpenVINO or NNCF
missing) the fallback is ONNX Runtime fp32 (also the fingerprint of every index made before engines
existed). ARM and other CPUs were not measured.
"""

from __future__ import annotations

import importlib.util
import platform
from dataclasses import dataclass
from pathlib import Path

from ..config import QUANTIZED

# The measured fastest configuration holding the guard (no P@K, K = 1..6, on demo, Tux Paint or
# Fashion-MNIST more than 1 point below ONNX Runtime fp32) for the bundled backbone: 3.1x the batch
# throughput, 2.2x faster single images. Other backbones and custom models were not measured: fp32.
MEASURED_DEFAULT = ("openvino", "int8")
# With AMX, the same int8 file with its float part (the first convolution, kept out of int8) in
# bf16 on the AMX tiles: 1.03-1.04x int8's batch throughput (paired rounds), the same single-image
# latency, worst dP@K -0.6 points, min cosine to fp32 0.939 (int8: 0.926), on the Sapphire Rapids
# VM. A CPU with AVX-512 BF16 but no AMX (Zen 4) keeps int8: there int8-bf16 ran 1.04-1.06x int8's
# batch throughput but lost 1.1 points of demo P@2 with pixels scaled in numpy and 0.3 with them
# scaled in OpenVINO's graph (docs/BENCHMARKS.md, 2026-12-04): at the guard's edge, where int8 held
# at -0.8 both times.
MEASURED_AMX = ("openvino", "int8-bf16")
# x86 with AVX2 but no VNNI: the half-range int8 file under OpenVINO (docs/BENCHMARKS.md, "On a CPU
# without VNNI"). ONNX Runtime runs that file at 0.4x fp32 (NNCF's signed activations), so not there.
MEASURED_NO_VNNI = ("openvino", "int8-w7")
MEASURED_BACKBONES = ("efficientnet-lite2",)
SAFE = ("onnxruntime", "fp32")
# Each engine's fastest precision that held the guard, for a user who names only the engine:
# ONNX Runtime int8 lost 1.1 points of demo P@2 and OpenVINO bf16 1.6, so neither is picked unasked.
# (OpenVINO named alone takes the machine's measured precision, int8-bf16 with AMX: see resolve.)
HELD_GUARD = {"openvino": "int8", "onnxruntime": "fp32"}
# Precisions only OpenVINO runs.
OPENVINO_ONLY = ("bf16", "int8-bf16", "int8-w7")


@dataclass(frozen=True)
class Run:
    """How the model runs, and why it runs so (for logs and the model archive's manifest)."""

    engine: str
    precision: str
    reason: str


def cpu_flags(cpuinfo: str) -> set[str]:
    """The ``flags`` of the first processor in ``/proc/cpuinfo`` text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _without_vnni(flags: set[str], openvino: bool | None, onnx: bool | None, nncf: bool | None) -> Run:
    if "avx2" not in flags:
        return Run(*SAFE, "no VNNI and no AVX2: int8 was not measured on such a CPU (the int8 file lost up to "
                          "1.9 points of P@K on an AVX2 CPU without VNNI)")
    have = {"openvino": openvino, "onnx": onnx, "nncf": nncf}
    missing = [name for name, known in have.items() if not (_installed(name) if known is None else known)]
    if missing:
        return Run(*SAFE, f"no VNNI, and {' and '.join(missing)} not installed (pip install 'lookalike[fast]') "
                          "for int8-w7, so fp32 (the int8 file lost up to 1.9 points of P@K without VNNI)")
    return Run(*MEASURED_NO_VNNI, "no VNNI (AVX2): openvino int8-w7, its weights in half the int8 range (no "
                                  "16-bit saturation), the fastest configuration that lost no more than 1 point "
                                  "of P@K against fp32 there (the int8 file lost 1.9)")


def choose_run(cpuinfo: str | None = None, *, machine: str | None = None, openvino: bool | None = None,
               onnx: bool | None = None, nncf: bool | None = None, measured: tuple[str, str] | None = None) -> Run:
    """The default engine/precision for this machine (or the given ``cpuinfo`` text, ``machine``
    architecture and whether OpenVINO, onnx and NNCF are installed, for tests); ``measured`` replaces
    the measured configuration of a VNNI CPU (``MEASURED_AMX`` on AMX CPUs, else ``MEASURED_DEFAULT``)."""
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64"):
        return Run(*SAFE, f"{machine} CPU: the int8 fast path was measured on x86-64 only")
    flags = cpu_flags(read_cpuinfo() if cpuinfo is None else cpuinfo)
    if not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        return _without_vnni(flags, openvino, onnx, nncf)
    engine, precision = measured or (MEASURED_AMX if "amx_bf16" in flags else MEASURED_DEFAULT)
    if precision in QUANTIZED and not (_installed("onnx") if onnx is None else onnx):
        # The int8 model is quantized on first use by ONNX Runtime's tooling, which needs onnx.
        return Run(*SAFE, "the onnx package is not installed (pip install 'lookalike[fast]') to make the int8 "
                          "model, so fp32")
    if engine == "openvino":
        if not (_installed("openvino") if openvino is None else openvino):
            # The same int8 file under ONNX Runtime lost 1.1 points of demo P@2: it fails the guard.
            return Run(*SAFE, "OpenVINO not installed (pip install 'lookalike[fast]'); ONNX Runtime int8 "
                              "did not hold the quality guard, so fp32")
    cpu = "AMX" if "amx_bf16" in flags else "VNNI"
    return Run(engine, precision, f"{cpu} CPU: {engine} {precision}, the fastest configuration that lost no "
                                  "more than 1 point of P@K against fp32")


def resolve(engine: str | None, precision: str | None, *, backbone: str | None, custom: bool) -> Run:
    """Fill what the user left unset: the measured default for the bundled backbone, else fp32."""
    if engine is not None and precision is not None:
        return Run(engine, precision, "chosen")
    if custom or backbone not in MEASURED_BACKBONES:
        default = Run(*SAFE, "not measured for this model")
    else:
        default = choose_run()
    if engine is None and precision is None:
        return default
    if precision is None:  # an engine alone: its fastest precision that held the guard, where int8 is safe
        if engine == default.engine:
            precision = default.precision
        else:
            precision = HELD_GUARD.get(engine, "fp32") if default.precision != "fp32" else "fp32"
        return Run(engine, precision, "engine chosen")
    return Run("openvino" if precision in OPENVINO_ONLY else default.engine, precision, "precision chosen")
