"""Model precision and engine: speed and retrieval quality of each way to run the backbone.

Usage: python scripts/bench_precision.py [--configs onnxruntime/fp32,...] [--fashion-limit N]
       [--rounds 5] [--out FILE.json]

Configs (default: all seven): onnxruntime/fp32 (the reference), onnxruntime/int8, openvino/fp32,
openvino/int8, openvino/bf16, openvino/int8-bf16 (the int8 file, its float part in bf16; needs a
bf16 CPU), openvino/int8-w7 (NNCF's file with weights in half the range, for CPUs without VNNI); ``ENGINE/int8:percentile`` tries the percentile calibration. Speed is measured alternating the configs in this one process,
round by round, on the same real demo images already preprocessed: the model alone, single-image
p50 (latency session, as the API uses) and batch-16 throughput (bulk session, as ingest uses).
Quality: P@K, K = 1..6, leave-one-out on demo, Tux Paint and Fashion-MNIST test (lookalike.eval;
features cached per fingerprint), dP@K vs onnxruntime/fp32 and the cosine of each vector to its
fp32 twin. The guard: no P@K on any set more than 1 point below fp32 (a gain is no failure).
Prints a Markdown table (``--table FILE.json`` prints it again from a saved run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CACHE = Path(os.environ.get("LOOKALIKE_CACHE_DIR", ROOT / ".cache" / "lookalike"))
DATASETS = Path(os.environ.get("LOOKALIKE_DATASETS_DIR", ROOT / ".cache" / "datasets"))
CONFIGS = ("onnxruntime/fp32", "onnxruntime/int8", "openvino/fp32", "openvino/int8", "openvino/bf16",
           "openvino/int8-bf16", "openvino/int8-w7")
REFERENCE = "onnxruntime/fp32"
GUARD = 1.0  # points of P@K


def make(config: str, bulk: bool):
    """``engine/precision`` as lookalike builds it; ``engine/int8:METHOD`` tries another calibration."""
    from lookalike.embedders import create_embedder

    config, _, method = config.partition(":")
    engine, precision = config.split("/")
    embedder = create_embedder("efficientnet-lite2", cache_dir=CACHE, engine=engine, precision=precision, bulk=bulk,
                               batch_size=16)
    if method:
        from lookalike.embedders.export import ensure_onnx
        from lookalike.embedders.quantize import ensure_int8

        path = ensure_int8(ensure_onnx("efficientnet-lite2", CACHE), CACHE, embedder.spec, method=method)
        embedder = type(embedder)(path, embedder.spec, name=embedder.name, bulk=bulk, batch_size=16,
                                  precision=precision)
    return embedder


def speed(embedders: dict, images: list, rounds: int, singles: int, batches: int) -> dict:
    """Per config: median single-image seconds and images/s at batch 16, alternating configs, on
    ``images`` as each config prepares them (OpenVINO scales pixels inside its graph)."""
    single: dict[str, list[float]] = {c: [] for c in embedders}
    throughput: dict[str, list[float]] = {c: [] for c in embedders}
    prepared = {c: np.stack([lat.prepare(image) for image in images]) for c, (lat, _) in embedders.items()}
    for c, (lat, bulk) in embedders.items():  # warm-up: first runs allocate and compile
        lat.encode_prepared(prepared[c][:1])
        bulk.encode_prepared(prepared[c])
    for _ in range(rounds):
        for c, (lat, bulk) in embedders.items():
            batch = prepared[c]
            for i in range(singles):
                t = time.perf_counter()
                lat.encode_prepared(batch[i % len(batch):][:1])
                single[c].append(time.perf_counter() - t)
            t = time.perf_counter()
            for _ in range(batches):
                bulk.encode_prepared(batch)
            throughput[c].append(batches * len(batch) / (time.perf_counter() - t))
    return {c: {"single_ms_p50": statistics.median(single[c]) * 1000,
                "batch16_img_per_s": statistics.median(throughput[c])} for c in embedders}


def datasets(fashion_limit: int | None):
    from lookalike.eval import datasets as ds

    out = {"demo": ds.image_folder(ROOT / "data" / "demo"), "tuxpaint": ds.tuxpaint(datasets_dir=DATASETS)}
    fashion = ds.fashion_mnist("test", datasets_dir=DATASETS)
    if fashion_limit and fashion_limit < len(fashion):
        fashion = fashion.subset(ds.stratified_sample(fashion.labels, fashion_limit, 0))
    out["fashion-mnist"] = fashion
    return out


def p_at_k(vectors: np.ndarray, labels: list[str]) -> dict[int, float]:
    from lookalike.eval.metrics import KS, precision_at_k, rank_gallery

    ranked = rank_gallery(vectors, vectors, max(KS), self_rows=np.arange(len(vectors)))
    gallery = np.asarray(labels, dtype=object)
    return precision_at_k([list(gallery[row[row >= 0]]) for row in ranked], labels)


def quality(embedders: dict, sets: dict) -> dict:
    from lookalike.eval.features import extract

    out: dict = {c: {} for c in embedders}
    vectors = {}
    for name, dataset in sets.items():
        for c, (_, bulk) in embedders.items():
            vectors[c, name] = extract(dataset, bulk, cache_dir=CACHE, batch_size=32, workers=2)
            out[c][name] = {"p_at_k": p_at_k(vectors[c, name], dataset.labels)}
        for c in embedders:
            cos = np.einsum("ij,ij->i", vectors[c, name], vectors[REFERENCE, name])
            ref = out[REFERENCE][name]["p_at_k"]
            row = out[c][name]
            row["dp_at_k"] = {k: 100 * (row["p_at_k"][k] - ref[k]) for k in ref}
            row["cos_min"], row["cos_mean"] = float(cos.min()), float(cos.mean())
    return out


def cpu_model() -> str:
    """The CPU's model name and the flags that decide the default (results differ by CPU, not by arch)."""
    from lookalike.embedders.choice import cpu_flags, read_cpuinfo

    text = read_cpuinfo()
    name = next((line.partition(":")[2].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = sorted(cpu_flags(text) & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16"})
    return f"{name} ({' '.join(flags) or 'none of avx2/avx512/vnni/bf16/amx'})"


def table(configs: list[str], fast: dict, good: dict, sets: dict) -> str:
    ref = fast[REFERENCE]
    quality = " | ".join(f"{n}: P@1..6 (ΔP@K, points)" for n in sets) + " | min / mean cos | Worst ΔP@K: guard |"
    lines = ["| Config | Single p50 (ms) | vs fp32 | Batch 16 (img/s) | vs fp32 |" + (f" {quality}" if sets else ""),
             "|---" * (5 + (len(sets) + 2 if sets else 0)) + "|"]
    for c in configs:
        f, q = fast[c], good[c]
        speed_cells = (f"| {c} | {f['single_ms_p50']:.1f} | {ref['single_ms_p50'] / f['single_ms_p50']:.2f}x "
                       f"faster | {f['batch16_img_per_s']:.1f} | {f['batch16_img_per_s'] / ref['batch16_img_per_s']:.2f}x |")
        if not sets:  # a --skip-quality run: speed only
            lines.append(speed_cells)
            continue
        cells = []
        for n in sets:
            p, d = q[n]["p_at_k"], q[n]["dp_at_k"]
            cells.append(" ".join(f"{100 * p[k]:.1f}" for k in p)
                         + ("" if c == REFERENCE else " (" + " ".join(f"{d[k]:+.1f}" for k in d) + ")"))
        cos = f"{min(q[n]['cos_min'] for n in sets):.3f} / {min(q[n]['cos_mean'] for n in sets):.3f}"
        worst = min(d for n in sets for d in q[n]["dp_at_k"].values())
        held = worst >= -GUARD - 1e-9
        lines.append(f"{speed_cells} " + " | ".join(cells) + f" | {cos} | {worst:+.1f}: {'holds' if held else 'FAILS'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--fashion-limit", type=int, default=0, help="stratified subset of the 10k test split")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--singles", type=int, default=20, help="single-image runs per config per round")
    parser.add_argument("--batches", type=int, default=4, help="batches of 16 per config per round")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--table", type=Path, help="print the table of a saved --out file and stop")
    args = parser.parse_args(argv)
    if args.table:
        saved = json.loads(args.table.read_text())
        sets = {n: None for n in saved["datasets"]}
        print(table(saved["configs"], saved["speed"], saved["quality"], sets))
        return 0
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if REFERENCE not in configs:
        configs.insert(0, REFERENCE)

    from lookalike.embedders.choice import choose_run
    from lookalike.errors import ConfigError
    from lookalike.imaging import decode_image

    load = os.getloadavg()
    embedders, skipped = {}, {}
    for c in configs:
        try:
            embedders[c] = (make(c, bulk=False), make(c, bulk=True))
        except ConfigError as exc:  # e.g. bf16 on a CPU without it: measure the rest
            if c == REFERENCE:
                raise
            skipped[c] = str(exc)
            print(f"skipped {c}: {exc}", file=sys.stderr)
    configs = [c for c in configs if c in embedders]
    demo = sorted((ROOT / "data" / "demo").rglob("*.png"))[::12][:16]
    images = [decode_image(p.read_bytes(), max_pixels=10**8) for p in demo]
    fast = speed(embedders, images, args.rounds, args.singles, args.batches)
    sets = datasets(args.fashion_limit) if not args.skip_quality else {}
    good = quality(embedders, sets) if sets else {c: {} for c in configs}
    result = {"machine": platform.processor() or platform.machine(), "cpu": cpu_model(), "cpus": os.cpu_count(),
              "load_before": load, "load_after": os.getloadavg(), "configs": configs, "skipped": skipped,
              "datasets": {n: len(d) for n, d in sets.items()}, "speed": fast, "quality": good,
              "fingerprints": {c: embedders[c][0].fingerprint for c in configs},
              "default_here": choose_run().__dict__}
    print(table(configs, fast, good, sets))
    print(json.dumps(result, indent=1, default=str))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
