"""Benchmarks: the model's floor, preprocessing, ingest throughput, API latency over loopback, memory.

Usage: python scripts/bench.py [--datasets demo,fashion-mnist] [--requests 200] [--out FILE.json]

Every number printed is measured in this run. "fp32" is the fp32 model under ONNX Runtime (the
reference); "default" is what a new index gets (``lookalike.embedders.default_embedder``: the
measured engine and precision for this CPU). Ratios, each against blocks measured around it:
- ingest throughput (default) / fp32 model batch throughput   (target >= 2: ingest with the faster model)
- POST /search p50 (default) / fp32 model single-image latency (target <= 1: HTTP, decoding and k-NN
  cost less than the model time the default saves)
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


def load_model(batch_size: int, *, default: bool = False, bulk: bool = False):
    """fp32 under ONNX Runtime (``default=False``), or the default embedder of a new index.
    ``bulk`` is the session ingest uses; without it, the model alone at its fastest for one image
    (ONNX Runtime's default session spins its idle threads between operators)."""
    from lookalike.config import Settings
    from lookalike.embedders import create_embedder, embedder_from_settings

    if default:
        return embedder_from_settings(Settings(cache_dir=CACHE, batch_size=batch_size), bulk=bulk)
    return create_embedder("efficientnet-lite2", cache_dir=CACHE, batch_size=batch_size, engine="onnxruntime",
                           precision="fp32", bulk=bulk)


def describe(emb) -> str:
    return f"{getattr(emb, 'engine', 'onnxruntime')} {getattr(emb, 'precision', 'fp32')}"


def random_prepared(emb, n: int, seed: int) -> np.ndarray:
    """``n`` random inputs as ``emb.prepare`` makes them: model-scaled floats, or the uint8 pixels
    of an engine that scales them inside its graph (OpenVINO)."""
    rng = np.random.default_rng(seed)
    shape, dtype = (n, *emb.prepared_shape), np.dtype(emb.prepared_dtype)
    if dtype == np.uint8:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.uniform(-1, 1, shape).astype(dtype)


def single_input(emb) -> np.ndarray:
    return random_prepared(emb, 1, 0)


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
    batch = random_prepared(emb, batch_size, 1)
    emb.encode_prepared(batch)
    t = time.perf_counter()
    for _ in range(rounds):
        emb.encode_prepared(batch)
    return rounds * batch_size / (time.perf_counter() - t)


def model_floor(models: dict, batch_size: int, reps: int, rounds: int = 5) -> dict:
    """Each model alone on prepared tensors, in alternating blocks: single-image latency (its
    latency session) and batch throughput (its bulk session, as ingest runs it); ``models`` maps
    a name to ``(single, bulk)`` embedders."""
    out = {name: {"engine": describe(single), "singles": [], "batches": []} for name, (single, _) in models.items()}
    for _ in range(rounds):
        for name, (single, bulk) in models.items():
            out[name]["singles"] += time_single(single, single_input(single), reps // rounds, warmup=5)
            out[name]["batches"].append(batch_throughput(bulk, batch_size, max(2, 64 // batch_size)))
    for name, m in out.items():
        singles, batches = m.pop("singles"), m.pop("batches")
        m.update(single_ms_p50=percentile(singles, 50) * 1000, single_ms_p99=percentile(singles, 99) * 1000,
                 batch_size=batch_size, batch_img_per_s=statistics.median(batches))
    first = next(iter(out))
    for name, m in out.items():
        m["batch_ratio_to_fp32"] = m["batch_img_per_s"] / out[first]["batch_img_per_s"]
        m["single_ratio_to_fp32"] = m["single_ms_p50"] / out[first]["single_ms_p50"]
    return out


PREP_SETS = ("demo", "tuxpaint", "fashion-mnist")


def prep_times(folders: dict[str, Path], spec, limit: int = 1000, rounds: int = 3) -> dict:
    """CPU per image of decode + prepare (``decode_image`` + ``to_array``, as ingest and search run
    them), by stage, on up to ``limit`` files of each set: the median of ``rounds`` passes."""
    import io as _io

    from PIL import Image

    from lookalike.embedders.preprocess import grey_band, resize_and_crop, scale_pixels, to_array
    from lookalike.imaging import FORMATS, decode_image, to_rgb

    clock = time.thread_time
    out = {}
    for name, folder in folders.items():
        files = sorted(folder.rglob("*.png"))
        datas = [p.read_bytes() for p in files[:: max(1, len(files) // limit)][:limit]]
        totals, stages = [], {"decode": [], "flatten+convert": [], "resize": [], "normalise": []}
        for _ in range(rounds):
            t = clock()
            for data in datas:
                to_array(decode_image(data, max_pixels=40_000_000, grey=True), spec)
            totals.append((clock() - t) / len(datas) * 1000)
            acc = dict.fromkeys(stages, 0.0)
            for data in datas:  # the same work, stage by stage
                t0 = clock()
                image = Image.open(_io.BytesIO(data), formats=FORMATS)
                image.load()
                t1 = clock()
                image = to_rgb(image, grey=True)
                image = image if image.mode == "L" else (grey_band(image) or image)
                t2 = clock()
                pixels = resize_and_crop(image, spec)
                t3 = clock()
                scale_pixels(np.asarray(pixels), spec)
                t4 = clock()
                for key, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    acc[key] += dt
            for key in stages:
                stages[key].append(acc[key] / len(datas) * 1000)
        out[name] = {"images": len(datas), "prepare_ms": statistics.median(totals),
                     "stages_ms": {k: round(statistics.median(v), 3) for k, v in stages.items()}}
    return out


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


# A pause between the blocks of requests and of model runs. ONNX Runtime's default session keeps
# its threads spinning for a while after each run, so requests sent right after an fp32 block
# share the two cores with those threads: 7.07 ms p50 against 6.21 ms 50 ms later, and 6.09 ms
# with no fp32 runs at all (one server, 120 requests each, alternating).
QUIET_S = 0.05


def serve_latency(index_dir: Path, queries: list[Path], n: int, env: dict, emb, block: int = 10) -> dict:
    """``n`` sequential POST /search requests, interleaved in blocks with single-image runs of the
    model in this process, so the ratio compares both under the same machine conditions; each
    block starts after a short pause (``QUIET_S``) so neither runs beside the other's threads.

    Blocks alternate two clients on keep-alive connections: the standard library's
    ``http.client``, which adds little of its own, and httpx, whose request handling costs about
    0.75 ms more (the time to the response's start, measured in the server, is the same). The
    ratio is taken for both; ``http.client`` is the one that measures the server."""
    import http.client

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
        lean = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def via_lean(body: str) -> dict:
            lean.request("POST", "/search", body=body, headers=headers)
            response = lean.getresponse()
            data = response.read()
            if response.status != 200:
                raise RuntimeError(f"POST /search answered {response.status}: {data[:200]!r}")
            return json.loads(data)

        with httpx.Client(timeout=30) as client:
            def via_httpx(body: str) -> dict:
                return client.post(url + "/search", content=body, headers=headers).raise_for_status().json()

            clients = {"http.client": via_lean, "httpx": via_httpx}
            for post in clients.values():
                for body in bodies[:10]:
                    post(body)
            lat = {name: [] for name in clients}
            server_ms, model = [], []
            for i in range(n):
                name = list(clients)[(i // block) % len(clients)]
                if i % block == 0:
                    time.sleep(QUIET_S)
                    model += time_single(emb, one, block)
                    time.sleep(QUIET_S)
                t = time.perf_counter()
                answer = clients[name](bodies[i % len(bodies)])
                lat[name].append(time.perf_counter() - t)
                server_ms.append(answer["took_ms"])
        lean.close()
        rss = _proc_hwm(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    model_p50 = percentile(model, 50) * 1000
    out = {"requests": n, "server_took_ms_p50": statistics.median(server_ms),
           "model_single_ms_p50_interleaved": model_p50,
           "query_bytes_median": statistics.median(len(q.read_bytes()) for q in queries), "server_peak_rss_mb": rss}
    for name, values in lat.items():
        p50 = percentile(values, 50) * 1000
        out[name] = {"requests": len(values), "p50_ms": p50, "p99_ms": percentile(values, 99) * 1000,
                     "p50_ratio_to_model_single": p50 / model_p50}
    return out


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


def ingest_vs_model(folder: Path, index_dir: Path, env: dict, fp32, default, batch_size: int) -> dict:
    """Ingest throughput (a new index: the default engine and precision) against the batch
    throughput of the fp32 model and of the default model (its bulk session) measured around it.

    The machine's speed drifts by 10-25% within seconds, so each reference is the median of
    several short blocks of model-only batches before, between and after the ingests, and a short
    ingest (under a minute) is repeated five times and its median run kept.
    """
    model: dict[str, list[float]] = {"fp32": [], "default": []}

    def blocks() -> None:
        for _ in range(3):
            for name, emb in (("fp32", fp32), ("default", default)):
                model[name].append(batch_throughput(emb, batch_size, max(2, 128 // batch_size)))

    for path in folder.rglob("*"):  # files in the page cache, as for the repeated runs: this times
        if path.is_file():           # the pipeline, not the disk (a cold 10,000-file read ran 3 ms a file)
            path.read_bytes()
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
    ing["fp32_batch_img_per_s_around"] = statistics.median(model["fp32"])
    ing["default_batch_img_per_s_around"] = statistics.median(model["default"])
    ing["ratio_to_fp32_batch"] = ing["img_per_s"] / ing["fp32_batch_img_per_s_around"]
    ing["ratio_to_default_batch"] = ing["img_per_s"] / ing["default_batch_img_per_s_around"]
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


def tuxpaint_folder() -> Path:
    from lookalike.config import Settings
    from lookalike.eval.datasets import TUXPAINT_SUBDIR, search_dirs

    datasets_dir = Settings.from_env().datasets_dir
    for folder in search_dirs("tuxpaint-stamps-default", TUXPAINT_SUBDIR, datasets_dir):
        if Path(folder).is_dir():
            return Path(folder)
    raise SystemExit("Tux Paint stamps are not unpacked: run `make datasets`")


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
                          "platform": platform.platform(), "loadavg_start": os.getloadavg()}, "datasets": {}}
    fp32 = load_model(args.batch_size)
    default, default_bulk = load_model(args.batch_size, default=True), load_model(args.batch_size, default=True, bulk=True)
    print(f"uptime: {os.getloadavg()} (load average 1/5/15 min)", flush=True)
    floor = model_floor({"fp32": (fp32, fp32), "default": (default, default_bulk)}, args.batch_size, reps=100)
    results["model"] = floor
    for name, m in floor.items():
        print(f"model efficientnet-lite2, {name} ({m['engine']}, {os.cpu_count()} cores): single image "
              f"{m['single_ms_p50']:.1f} ms p50 ({m['single_ms_p99']:.1f} p99), {m['single_ratio_to_fp32']:.2f}x fp32's; "
              f"batch {args.batch_size}: {m['batch_img_per_s']:.1f} img/s, {m['batch_ratio_to_fp32']:.2f}x fp32's",
              flush=True)

    folders = {"demo": ROOT / "data" / "demo"}
    wanted = args.datasets.split(",")
    if "fashion-mnist" in wanted:
        folders["fashion-mnist"] = fashion_mnist_folder()
    prep_folders = {"demo": folders["demo"], "tuxpaint": tuxpaint_folder()}
    prep_folders["fashion-mnist"] = folders.get("fashion-mnist") or fashion_mnist_folder()
    results["prepare"] = prep_times(prep_folders, fp32.spec)
    for name, p in results["prepare"].items():
        print(f"[{name}] prepare (decode + resize + scale, {p['images']} files): {p['prepare_ms']:.2f} ms CPU per image; "
              f"stages {p['stages_ms']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="lookalike-bench-") as tmp:
        for name in wanted:
            folder = folders[name]
            index_dir = Path(tmp) / name
            ing = ingest_vs_model(folder, index_dir, env, fp32, default_bulk, args.batch_size)
            images = sorted(folder.rglob("*.png"))
            queries = images[:: max(1, len(images) // 50)]
            api = serve_latency(index_dir, queries, args.requests, env, fp32)
            structure = search_structure(index_dir)
            results["datasets"][name] = {"ingest": ing, "api": api, "index": structure}
            print(f"[{name}] ingest {ing['images']} images (default model): {ing['img_per_s']:.1f} img/s end to end "
                  f"(runs {ing['runs_img_per_s']}); models alone around it, batch {ing['batch_size']}: fp32 "
                  f"{ing['fp32_batch_img_per_s_around']:.1f} img/s, ratio {ing['ratio_to_fp32_batch']:.2f} (target >= 2); "
                  f"default {ing['default_batch_img_per_s_around']:.1f} img/s, ratio {ing['ratio_to_default_batch']:.2f}; "
                  f"stages {ing['stages_s']}; peak RSS {ing['peak_rss_mb']:.0f} MB", flush=True)
            for client in ("http.client", "httpx"):
                c = api[client]
                print(f"[{name}] POST /search over loopback ({c['requests']} requests via {client}, k=6): "
                      f"p50 {c['p50_ms']:.1f} ms, p99 {c['p99_ms']:.1f} ms; fp32 model single, interleaved: "
                      f"{api['model_single_ms_p50_interleaved']:.1f} ms p50; ratio {c['p50_ratio_to_model_single']:.2f} "
                      "(target <= 1)", flush=True)
            print(f"[{name}] server took_ms p50 {api['server_took_ms_p50']:.1f}; server peak RSS "
                  f"{api['server_peak_rss_mb']:.0f} MB", flush=True)
            print(f"[{name}] index: {structure}", flush=True)
    results["machine"]["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
