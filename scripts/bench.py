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


def model_floor(batch_size: int, reps: int) -> dict:
    """The ONNX model alone on prepared tensors: single-image latency and batch throughput."""
    from lookalike.embedders import create_embedder

    emb = create_embedder("efficientnet-lite2", cache_dir=CACHE, batch_size=batch_size)
    rng = np.random.default_rng(0)
    one = rng.uniform(-1, 1, (1, 3, emb.spec.crop, emb.spec.crop)).astype(np.float32)
    batch = rng.uniform(-1, 1, (batch_size, 3, emb.spec.crop, emb.spec.crop)).astype(np.float32)
    for _ in range(5):
        emb.encode_prepared(one)
    singles = []
    for _ in range(reps):
        t = time.perf_counter()
        emb.encode_prepared(one)
        singles.append(time.perf_counter() - t)
    emb.encode_prepared(batch)
    t = time.perf_counter()
    rounds = max(3, reps // 10)
    for _ in range(rounds):
        emb.encode_prepared(batch)
    throughput = rounds * batch_size / (time.perf_counter() - t)
    return {"single_ms_p50": percentile(singles, 50) * 1000, "single_ms_p99": percentile(singles, 99) * 1000,
            "batch_size": batch_size, "batch_img_per_s": throughput}


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


def serve_latency(index_dir: Path, queries: list[Path], n: int, env: dict) -> dict:
    import httpx

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import free_port, wait_http  # the same helpers the tests use

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lookalike.cli", "serve", "--index-dir", str(index_dir),
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz", proc=proc)
        bodies = [json.dumps({"image": base64.b64encode(q.read_bytes()).decode(), "k": 6}) for q in queries]
        headers = {"content-type": "application/json"}
        with httpx.Client(timeout=30) as client:
            for body in bodies[:10]:
                client.post(url + "/search", content=body, headers=headers).raise_for_status()
            lat, server_ms = [], []
            for i in range(n):
                t = time.perf_counter()
                r = client.post(url + "/search", content=bodies[i % len(bodies)], headers=headers)
                lat.append(time.perf_counter() - t)
                r.raise_for_status()
                server_ms.append(r.json()["took_ms"])
        rss = _proc_hwm(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    return {"requests": n, "p50_ms": percentile(lat, 50) * 1000, "p99_ms": percentile(lat, 99) * 1000,
            "server_took_ms_p50": statistics.median(server_ms), "query_bytes_median": statistics.median(
                len(q.read_bytes()) for q in queries), "server_peak_rss_mb": rss}


def _proc_hwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def fashion_mnist_folder() -> Path:
    from lookalike.datasets import export_images, fashion_mnist

    out = CACHE.parent / "bench" / "fashion-mnist-test"
    marker = out / ".complete"
    if not marker.exists():
        print(f"writing the Fashion-MNIST test split as PNG files under {out} ...", flush=True)
        export_images(fashion_mnist("test"), out)
        marker.touch()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="demo,fashion-mnist")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "bench.json")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    env.update({"LOOKALIKE_CACHE_DIR": str(CACHE), "PYTHONPATH": str(ROOT)})
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()}, "datasets": {}}
    floor = model_floor(args.batch_size, reps=100)
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
            ing = ingest(folder, index_dir, env)
            ing["ratio_to_model_batch"] = ing["img_per_s"] / floor["batch_img_per_s"]
            queries = sorted(p for p in folder.rglob("*.png"))[:: max(1, len(list(folder.rglob("*.png"))) // 50)]
            api = serve_latency(index_dir, queries, args.requests, env)
            api["p50_ratio_to_model_single"] = api["p50_ms"] / floor["single_ms_p50"]
            results["datasets"][name] = {"ingest": ing, "api": api}
            print(f"[{name}] ingest {ing['images']} images: {ing['img_per_s']:.1f} img/s end to end "
                  f"(ratio to model batch throughput {ing['ratio_to_model_batch']:.2f}, target >= 0.8); "
                  f"stages {ing['stages_s']}; peak RSS {ing['peak_rss_mb']:.0f} MB")
            print(f"[{name}] POST /search over loopback ({api['requests']} requests, k=6): p50 {api['p50_ms']:.1f} ms, "
                  f"p99 {api['p99_ms']:.1f} ms (server took_ms p50 {api['server_took_ms_p50']:.1f}); "
                  f"p50 / model single = {api['p50_ratio_to_model_single']:.2f} (target <= 1.5); "
                  f"server peak RSS {api['server_peak_rss_mb']:.0f} MB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
