"""Benchmarks: the model's floor, ingest throughput, API latency over loopback, peak memory.

Usage: python scripts/bench.py [--datasets demo,fashion-mnist] [--requests 200] [--out FILE.json]

Every number printed is measured in this run. Ratios:
- ingest throughput / model batch throughput   (target >= 0.8: ingest keeps the model busy)
- POST /search p50 / model single-image latency (target <= 1.5: HTTP, decoding and k-NN add little)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CACHE = Path(os.environ.get("LOOKALIKE_CACHE_DIR", ROOT / ".cache" / "lookalike"))


def percentile(values, q):
    return float(np.percentile(np.asarray(values), q))


def load_model(batch_size: int):
    """The model alone at its fastest: the default session (idle threads spin between operators)."""
    from lookalike.embedders import create_embedder

    return create_embedder("efficientnet-lite2", cache_dir=CACHE, batch_size=batch_size)


def single_input(emb) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (1, 3, emb.spec.crop, emb.spec.crop)).astype(np.float32)


def time_single(emb, one: np.ndarray, reps: int, warmup: int = 1) -> list[float]:
    """Seconds per single-image model run, ``reps`` times after ``warmup`` untimed runs."""
    for _ in range(warmup):
        emb.encode_prepared(one)
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        emb.encode_prepared(one)
        out.append(time.perf_counter() - t)
    return out


def batch_throughput(emb, batch_size: int, rounds: int) -> float:
    """Images per second of the model alone on prepared batches (after one warm-up batch)."""
    batch = np.random.default_rng(1).uniform(-1, 1, (batch_size, 3, emb.spec.crop, emb.spec.crop)).astype(np.float32)
    emb.encode_prepared(batch)
    t = time.perf_counter()
    for _ in range(rounds):
        emb.encode_prepared(batch)
    return rounds * batch_size / (time.perf_counter() - t)


def model_floor(emb, batch_size: int, reps: int) -> dict:
    """The ONNX model alone on prepared tensors: single-image latency and batch throughput."""
    singles = time_single(emb, single_input(emb), reps, warmup=5)
    return {"single_ms_p50": percentile(singles, 50) * 1000, "single_ms_p99": percentile(singles, 99) * 1000,
            "batch_size": batch_size, "batch_img_per_s": batch_throughput(emb, batch_size, max(3, reps // 10))}


def ingest(folder: Path, index_dir: Path, env: dict) -> dict:
    shutil.rmtree(index_dir, ignore_errors=True)
    code = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
            "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "w = time.perf_counter() - t; "
            "print(json.dumps({'rc': r.returncode, 'out': r.stdout, 'err': r.stderr[-2000:], 'wall': w, "
            "'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")
    cmd = [sys.executable, "-c", code, sys.executable, "-m", "lookalike.cli", "index", str(folder),
           "--index-dir", str(index_dir), "--json", "--quiet"]
    res = json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)
    if res["rc"] != 0:
        raise RuntimeError(res["err"])
    report = json.loads(res["out"])
    return {"images": report["indexed"], "failed": len(report["failed"]), "process_wall_s": res["wall"],
            "ingest_s": report["seconds"], "img_per_s": report["images_per_second"],
            "stages_s": report["stages"], "peak_rss_mb": res["maxrss_kb"] / 1024}


def serve_latency(index_dir: Path, queries: list[Path], n: int, env: dict, emb, block: int = 10) -> dict:
    """``n`` sequential POST /search requests, interleaved in blocks with single-image runs of the
    model in this process, so the ratio compares both under the same machine conditions."""
    import httpx

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import free_port, wait_http  # the same helpers the tests use

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lookalike.cli", "serve", "--index-dir", str(index_dir),
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    one = single_input(emb)
    try:
        wait_http(url + "/healthz", proc=proc)
        bodies = [json.dumps({"image": base64.b64encode(q.read_bytes()).decode(), "k": 6}) for q in queries]
        headers = {"content-type": "application/json"}
        with httpx.Client(timeout=30) as client:
            for body in bodies[:10]:
                client.post(url + "/search", content=body, headers=headers).raise_for_status()
            lat, server_ms, model = [], [], []
            for i in range(n):
                if i % block == 0:
                    model += time_single(emb, one, block)
                t = time.perf_counter()
                r = client.post(url + "/search", content=bodies[i % len(bodies)], headers=headers)
                lat.append(time.perf_counter() - t)
                r.raise_for_status()
                server_ms.append(r.json()["took_ms"])
        rss = _proc_hwm(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    p50 = percentile(lat, 50) * 1000
    model_p50 = percentile(model, 50) * 1000
    return {"requests": n, "p50_ms": p50, "p99_ms": percentile(lat, 99) * 1000,
            "server_took_ms_p50": statistics.median(server_ms), "model_single_ms_p50_interleaved": model_p50,
            "p50_ratio_to_model_single": p50 / model_p50,
            "query_bytes_median": statistics.median(len(q.read_bytes()) for q in queries),
            "server_peak_rss_mb": rss}


def search_structure(index_dir: Path, k: int = 6, n: int = 1000) -> dict:
    """The saved index's structure and single-query search time; for HNSW, also an exact index of the
    same vectors: its time and the recall@k of HNSW against it."""
    from lookalike.index.faiss_index import FaissIndex

    index = FaissIndex.load(index_dir)
    ids = [id_ for id_, _ in index.items()]
    vectors = index.get_vectors(ids)
    queries = vectors[np.random.default_rng(0).choice(len(ids), min(n, len(ids)), replace=False)]
    out = {"structure": index.info()["structure"], "entries": len(ids), "dim": index.dim}
    found, out["search_ms_p50"] = _time_searches(index, queries, k)
    if out["structure"] == "hnsw":
        exact = FaissIndex(None, index.dim, hnsw_threshold=0)
        exact.add(ids, vectors, [{}] * len(ids))
        truth, out["exact_search_ms_p50"] = _time_searches(exact, queries, k)
        out[f"recall_at_{k}"] = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth)]))
    return out


def _time_searches(index, queries: np.ndarray, k: int) -> tuple[list[list[str]], float]:
    index.search(queries[:1], k)  # builds the structure if needed
    found, times = [], []
    for q in queries:
        t = time.perf_counter()
        hits = index.search(q[None], k)[0]
        times.append(time.perf_counter() - t)
        found.append([h.id for h in hits])
    return found, percentile(times, 50) * 1000


def ingest_vs_model(folder: Path, index_dir: Path, env: dict, emb, batch_size: int) -> dict:
    """Ingest throughput against the model's batch throughput measured around it.

    The machine's speed drifts by 10-25% within seconds, so the reference is the median of
    several short blocks of model-only batches before and after the ingest, and a short ingest
    (under a minute) is repeated five times and its median run kept. The reference uses the
    ingest's batch size; blocks of 32 run beside it, to show what the batch size costs.
    """
    sizes = sorted({batch_size, 32})
    model: dict[int, list[float]] = {b: [] for b in sizes}

    def blocks() -> None:
        for _ in range(3):
            for b in sizes:
                model[b].append(batch_throughput(emb, b, max(2, 128 // b)))

    blocks()
    runs = [ingest(folder, index_dir, env)]
    while runs[0]["ingest_s"] < 60 and len(runs) < 5:
        blocks()
        runs.append(ingest(folder, index_dir, env))
    blocks()
    runs.sort(key=lambda r: r["img_per_s"])
    ing = runs[len(runs) // 2]
    ing["runs_img_per_s"] = [r["img_per_s"] for r in runs]
    ing["batch_size"] = batch_size
    ing["model_batch_img_per_s_around"] = statistics.median(model[batch_size])
    ing["model_batch32_img_per_s_around"] = statistics.median(model[32])
    ing["ratio_to_model_batch"] = ing["img_per_s"] / ing["model_batch_img_per_s_around"]
    ing["ratio_to_model_batch32"] = ing["img_per_s"] / ing["model_batch32_img_per_s_around"]
    return ing


def _proc_hwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def fashion_mnist_folder() -> Path:
    from lookalike.config import Settings
    from lookalike.eval.datasets import export_images, fashion_mnist

    out = CACHE.parent / "bench" / "fashion-mnist-test"
    marker = out / ".complete"
    if not marker.exists():
        print(f"writing the Fashion-MNIST test split as PNG files under {out} ...", flush=True)
        export_images(fashion_mnist("test", datasets_dir=Settings.from_env().datasets_dir), out)
        marker.touch()
    return out


def main() -> None:
    from lookalike.config import Settings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="demo,fashion-mnist")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=Settings().batch_size,
                        help="batch size of the ingest and of the model-alone reference (default: lookalike's)")
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "bench.json")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    env.update({"LOOKALIKE_CACHE_DIR": str(CACHE), "PYTHONPATH": str(ROOT), "LOOKALIKE_BATCH_SIZE": str(args.batch_size)})
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()}, "datasets": {}}
    emb = load_model(args.batch_size)
    floor = model_floor(emb, args.batch_size, reps=100)
    results["model"] = floor
    print(f"model efficientnet-lite2 (ONNX Runtime, {os.cpu_count()} cores): single image "
          f"{floor['single_ms_p50']:.1f} ms p50 ({floor['single_ms_p99']:.1f} p99); batch {args.batch_size}: "
          f"{floor['batch_img_per_s']:.1f} img/s")

    folders = {"demo": ROOT / "data" / "demo"}
    wanted = args.datasets.split(",")
    if "fashion-mnist" in wanted:
        folders["fashion-mnist"] = fashion_mnist_folder()
    with tempfile.TemporaryDirectory(prefix="lookalike-bench-") as tmp:
        for name in wanted:
            folder = folders[name]
            index_dir = Path(tmp) / name
            ing = ingest_vs_model(folder, index_dir, env, emb, args.batch_size)
            images = sorted(folder.rglob("*.png"))
            queries = images[:: max(1, len(images) // 50)]
            api = serve_latency(index_dir, queries, args.requests, env, emb)
            structure = search_structure(index_dir)
            results["datasets"][name] = {"ingest": ing, "api": api, "index": structure}
            print(f"[{name}] ingest {ing['images']} images: {ing['img_per_s']:.1f} img/s end to end "
                  f"(runs {ing['runs_img_per_s']}; model alone around it, batch {ing['batch_size']}: "
                  f"{ing['model_batch_img_per_s_around']:.1f} img/s, ratio {ing['ratio_to_model_batch']:.2f}, target >= 0.8; "
                  f"batch 32: {ing['model_batch32_img_per_s_around']:.1f} img/s, ratio {ing['ratio_to_model_batch32']:.2f}); "
                  f"stages {ing['stages_s']}; peak RSS {ing['peak_rss_mb']:.0f} MB")
            print(f"[{name}] POST /search over loopback ({api['requests']} requests, k=6): p50 {api['p50_ms']:.1f} ms, "
                  f"p99 {api['p99_ms']:.1f} ms (server took_ms p50 {api['server_took_ms_p50']:.1f}); "
                  f"model single, interleaved: {api['model_single_ms_p50_interleaved']:.1f} ms p50; "
                  f"ratio {api['p50_ratio_to_model_single']:.2f} (target <= 1.5); "
                  f"server peak RSS {api['server_peak_rss_mb']:.0f} MB")
            print(f"[{name}] index: {structure}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
