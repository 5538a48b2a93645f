"""scripts/bench_precision.py's table: speed-only runs print, and the guard verdict follows ΔP@K."""

from __future__ import annotations

import importlib.util

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("bench_precision", ROOT / "scripts" / "bench_precision.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

SPEED = {"onnxruntime/fp32": {"single_ms_p50": 15.0, "batch16_img_per_s": 50.0},
         "openvino/int8": {"single_ms_p50": 10.0, "batch16_img_per_s": 100.0}}


def _quality(delta: float) -> dict:
    ref = {str(k): 0.8 for k in range(1, 7)}
    row = {str(k): 0.8 + delta / 100 for k in range(1, 7)}
    return {"onnxruntime/fp32": {"demo": {"p_at_k": ref, "dp_at_k": {k: 0.0 for k in ref},
                                          "cos_min": 1.0, "cos_mean": 1.0}},
            "openvino/int8": {"demo": {"p_at_k": row, "dp_at_k": {k: delta for k in ref},
                                       "cos_min": 0.9, "cos_mean": 0.98}}}


def test_a_speed_only_run_prints_its_table():
    lines = bench.table(list(SPEED), SPEED, {c: {} for c in SPEED}, {}).splitlines()
    assert len(lines) == 4 and all(line.count("|") == 6 for line in lines)
    assert "| openvino/int8 | 10.0 | 1.50x faster | 100.0 | 2.00x |" == lines[-1]


def test_the_guard_verdict_follows_the_worst_drop():
    holds = bench.table(list(SPEED), SPEED, _quality(-0.9), {"demo": None}).splitlines()[-1]
    fails = bench.table(list(SPEED), SPEED, _quality(-1.2), {"demo": None}).splitlines()[-1]
    assert holds.endswith("-0.9: holds |") and fails.endswith("-1.2: FAILS |")
    assert "0.900 / 0.980" in fails


def test_a_config_this_machine_cannot_run_is_skipped_and_recorded(tmp_path, capsys):
    """``make bench`` runs every config; one the CPU or engine refuses (bf16 without bf16) is left
    out with its reason instead of ending the run."""
    import json

    out = tmp_path / "run.json"
    assert bench.main(["--configs", "onnxruntime/bf16", "--skip-quality", "--rounds", "1", "--singles", "1",
                       "--batches", "1", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["configs"] == ["onnxruntime/fp32"] and "openvino" in saved["skipped"]["onnxruntime/bf16"]
    assert "skipped onnxruntime/bf16" in capsys.readouterr().err
