"""Index structures at 100k and 1M vectors: memory, disk, build/save/load time, recall@10, latency.

Usage: python scripts/bench_index.py [--sizes 100000,1000000] [--structures flat,hnsw-flat,...]
                                     [--work .cache/bench/index] [--out .cache/bench/index.json]

Vectors are made from real embeddings: the fp32 EfficientNet-Lite2 (ONNX Runtime) features of the
demo (187), the Tux Paint evaluation set (497) and stratified samples of Fashion-MNIST's train (300)
and test (2,000) splits: 2,984 vectors, read from lookalike.eval's feature cache or embedded into
it first. Each synthetic vector is ``normalise(w1*f1 + w2*f2 [+ w3*f3] + noise)``: 2 or 3
distinct features drawn uniformly (2 or 3 with equal probability), weights ~ Dirichlet(1,...,1),
noise ~ N(0, (0.05/sqrt(d))^2) per dimension (a noise vector of norm ~0.05), in float32. The
index vectors and 1,000 queries come from different seeds (queries are not in the index). Ground
truth is brute force (faiss IndexFlatIP). The data are written in 50k-row chunks to ``--work``
and reused by later runs (the generator's peak memory is a few chunks: < 1 GB).

Each structure is measured in fresh subprocesses (build; load; load with mmap), so one structure's
memory does not pollute another's. RSS is /proc/self/status VmRSS after minus before (anonymous +
file-backed pages: an mmap'd index's pages count once they are touched). Single-query latency is
one query per call with 1 OpenMP thread, as the API searches. Load times follow a save in the same
run (the file is in the page cache): they measure deserialisation, not the disk.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CACHE = Path(os.environ.get("LOOKALIKE_CACHE_DIR", ROOT / ".cache" / "lookalike"))
DIM, QUERIES, CHUNK, K = 1280, 1000, 50_000, 10
DATASETS = Path(os.environ.get("LOOKALIKE_DATASETS_DIR", ROOT / ".cache" / "datasets"))
RAW = ("flat", "hnsw-flat", "hnsw-fp16", "hnsw-sq8", "ivf-fp16", "ivfpq")
# 4-bit fast-scan PQ: 8-bit PQ160 trained 150 s on 20k vectors here (PQ320x4fs: 2 s) for +0.1 recall.


def rss() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def mb(n: float) -> float:
    return round(n / 2**20, 1)


# ----- data ------------------------------------------------------------------------------
def base_features() -> np.ndarray:
    """The real vectors every synthetic one mixes: fp32 features of three labelled sets, cached
    by lookalike.eval per model fingerprint (embedded on the first run, a few minutes)."""
    from lookalike.embedders import create_embedder
    from lookalike.eval import datasets as ds
    from lookalike.eval.features import extract

    embedder = create_embedder("efficientnet-lite2", cache_dir=CACHE, engine="onnxruntime", precision="fp32",
                               bulk=True, batch_size=16)

    def fashion(split: str, n: int):
        full = ds.fashion_mnist(split, datasets_dir=DATASETS)
        return full.subset(ds.stratified_sample(full.labels, n, 0))

    # Fashion-MNIST's grey garments are close to each other: all 10,000 of them would make most
    # mixtures garments (a denser, harder collection); samples keep the three sources comparable.
    sets = [ds.image_folder(ROOT / "data" / "demo"), ds.tuxpaint(datasets_dir=DATASETS),
            fashion("train", 300), fashion("test", 2000)]
    feats = np.concatenate([extract(d, embedder, cache_dir=CACHE, batch_size=32, workers=2) for d in sets])
    feats = feats.astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    return feats


def synthesize(feats: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = rng.choice([2, 3], size=n)
    picks = np.stack([rng.choice(len(feats), 3, replace=False) for _ in range(n)])
    weights = rng.dirichlet(np.ones(3), size=n).astype(np.float32)
    two = parts == 2
    weights[two, 2] = 0.0
    weights[two, :2] = rng.dirichlet(np.ones(2), size=int(two.sum()))
    out = np.zeros((n, feats.shape[1]), np.float32)
    for j in range(3):  # one (n, d) term at a time: peak memory ~3 chunks of float32
        out += weights[:, j:j + 1] * feats[picks[:, j]]
    out += rng.normal(0.0, 0.05 / np.sqrt(feats.shape[1]), size=out.shape).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.astype(np.float32)


def data_files(work: Path, n: int) -> tuple[Path, Path, Path]:
    return work / f"base-{n}.f32", work / "queries.npy", work / f"gt-{n}.npy"


def forget_other_mixtures(work: Path, feats: np.ndarray) -> None:
    """The generated files hold mixtures of ``feats``: made from others (another model file, other
    sets), they are deleted, to be made again, never reused."""
    stamp = work / "features.sha256"
    digest = hashlib.sha256(feats.tobytes()).hexdigest()
    if not stamp.exists() or stamp.read_text().strip() != digest:
        for old in work.glob("*"):
            if old.suffix in (".f32", ".npy", ".tmp"):
                old.unlink()
        stamp.write_text(digest + "\n")


def prepare(work: Path, n: int, feats: np.ndarray) -> None:
    import faiss

    base, qfile, gtfile = data_files(work, n)
    if not qfile.exists():
        np.save(qfile, synthesize(feats, QUERIES, seed=10**9))
    queries = np.load(qfile)
    if not (base.exists() and base.stat().st_size == n * DIM * 4):
        with open(str(base) + ".tmp", "wb") as fh:
            for start in range(0, n, CHUNK):  # chunk seeds: the first n rows are the same for every n
                fh.write(synthesize(feats, min(CHUNK, n - start), seed=start // CHUNK).tobytes())
        os.replace(str(base) + ".tmp", base)
    if not gtfile.exists():
        scores = np.full((QUERIES, K), -np.inf, np.float32)
        labels = np.full((QUERIES, K), -1, np.int64)
        for start, chunk in chunks(base, n):
            flat = faiss.IndexFlatIP(DIM)
            flat.add(chunk)
            s, i = flat.search(queries, K)
            allS, allI = np.hstack([scores, s]), np.hstack([labels, i + start])
            order = np.argsort(-allS, axis=1, kind="stable")[:, :K]
            scores, labels = np.take_along_axis(allS, order, 1), np.take_along_axis(allI, order, 1)
        np.save(gtfile, labels)
    print(f"data: {n} vectors from {len(feats)} real features in {base}", flush=True)


def chunks(base: Path, n: int, rows: int = CHUNK):
    with open(base, "rb") as fh:  # plain reads, not a mapping: the data must not count in RSS
        for start in range(0, n, rows):
            count = min(rows, n - start)
            yield start, np.fromfile(fh, dtype=np.float32, count=count * DIM).reshape(count, DIM)


def train_sample(base: Path, n: int, size: int) -> np.ndarray:
    """``size`` rows drawn uniformly from the first ``n`` (the mixtures are i.i.d., but a real
    collection is not, and lookalike samples so)."""
    from lookalike.index.structures import sample_positions

    data = np.memmap(base, dtype=np.float32, mode="r", shape=(n, DIM))
    try:
        return np.ascontiguousarray(data[sample_positions(n, size)])
    finally:
        del data


# ----- one structure, in a subprocess -----------------------------------------------------
def factory(name: str, n: int, args) -> tuple[object, int]:
    import faiss

    from lookalike.index import structures

    ip = faiss.METRIC_INNER_PRODUCT
    if name == "ivf-fp16":  # exactly as lookalike makes it, trained here on the same sample size
        return structures.empty("ivf", DIM, {}, n), structures.train_size("ivf", n)
    key = {"flat": "Flat", "hnsw-flat": f"HNSW{args.m},Flat", "hnsw-fp16": f"HNSW{args.m},SQfp16",
           "hnsw-sq8": f"HNSW{args.m},SQ8", "ivfpq": f"IVF{nlist(n)},PQ{args.pq_m}x4fs"}[name]
    index = faiss.index_factory(DIM, key, ip)
    if hasattr(index, "hnsw"):
        index.hnsw.efConstruction = args.ef_construction
    return index, {"ivfpq": 100_000, "hnsw-sq8": 50_000, "hnsw-fp16": 0}.get(name, 0)


def nlist(n: int) -> int:
    return 256 if n <= 200_000 else 1024  # ~sqrt(n): 1024 lists at 1M keep k-means training to a minute


def search_params(index, args):
    import faiss

    if hasattr(index, "hnsw"):
        p = faiss.SearchParametersHNSW()
        p.efSearch = args.ef_search
        return p
    if hasattr(index, "nprobe"):
        p = faiss.SearchParametersIVF()
        p.nprobe = args.ivf_nprobe if isinstance(index, faiss.IndexIVFScalarQuantizer) else args.nprobe
        return p
    return None


def measure_search(run, queries: np.ndarray, gt: np.ndarray, single: int) -> dict:
    """recall@10 over every query (batch), latency of ``single`` one-query calls with 1 thread."""
    import faiss

    labels = run(queries)
    recall = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(labels, gt)]))
    faiss.omp_set_num_threads(1)
    times = []
    for q in queries[:single]:
        t = time.perf_counter()
        run(q[None])
        times.append((time.perf_counter() - t) * 1000)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    return {"recall@10": round(recall, 4), "p50_ms": round(float(np.percentile(times, 50)), 3),
            "p99_ms": round(float(np.percentile(times, 99)), 3), "latency_queries": len(times)}, labels


def worker(args) -> dict:
    import faiss

    n, name = args.n, args.worker
    base, qfile, gtfile = data_files(Path(args.work), n)
    queries, gt = np.load(qfile), np.load(gtfile)
    single = 100 if name == "flat" and n > 200_000 else QUERIES  # an exact scan of 1M takes ~0.1 s a query
    folder = Path(args.work) / f"{name}-{n}"
    before = rss()
    out: dict = {"structure": name, "n": n}
    if args.phase == "build":
        t = time.perf_counter()
        if name == "lookalike":
            index = lookalike_build(base, n, folder)
        else:
            index, train = factory(name, n, args)
            if train:
                index.train(train_sample(base, n, train))
            for _, chunk in chunks(base, n):
                index.add(chunk)
            del chunk  # the last chunk read must not count as the index's memory
        out["build_s"] = round(time.perf_counter() - t, 1)
        out["rss_build_mb"] = mb(rss()["VmRSS"] - before["VmRSS"])
        t = time.perf_counter()
        if name == "lookalike":
            index.save()
        else:
            folder.mkdir(parents=True, exist_ok=True)
            faiss.write_index(index, str(folder / "index.faiss"))
            with open(folder / "index.faiss", "rb") as fh:
                os.fsync(fh.fileno())
        out["save_s"] = round(time.perf_counter() - t, 1)
        out["disk_mb"] = mb(sum(f.stat().st_size for f in folder.iterdir() if f.is_file()))
    else:
        mmap = args.phase == "mmap"
        t = time.perf_counter()
        if name == "lookalike":
            from lookalike.index.faiss_index import FaissIndex

            index = FaissIndex.load(folder, mmap=mmap)
        else:
            flags = faiss.IO_FLAG_MMAP_IFC if mmap else 0
            index = faiss.read_index(str(folder / "index.faiss"), flags)
        out["load_s"] = round(time.perf_counter() - t, 2)
        out["rss_load_mb"] = mb(rss()["VmRSS"] - before["VmRSS"])
    if name == "lookalike":
        run = lambda q: np.array([[int(h.id[3:]) for h in hits] for hits in index.search(q, K)])  # noqa: E731
    else:
        params = search_params(index, args)
        run = lambda q: index.search(q, K, params=params)[1]  # noqa: E731
    stats, labels = measure_search(run, queries, gt, single)
    out.update(stats)
    out["rss_after_search_mb"] = mb(rss()["VmRSS"] - before["VmRSS"])
    if args.phase == "mmap" and name == "lookalike":  # as the server does: fault the mapping in, search again
        t = time.perf_counter()
        out["warm_mb"] = mb(index.warm())
        out["warm_s"] = round(time.perf_counter() - t, 2)
        out["warm"] = measure_search(run, queries, gt, single)[0]
        out["rss_warm_mb"] = mb(rss()["VmRSS"] - before["VmRSS"])
    structure = index._structure if name == "lookalike" else index  # a sweep only where it changes the search
    if args.phase == "load" and args.ef_sweep and hasattr(structure, "hnsw"):
        out["ef_sweep"] = {}
        for ef in [int(e) for e in args.ef_sweep.split(",")]:  # the same graph, searched wider
            if name == "lookalike":
                index.params["ef_search"] = ef
            else:
                params.efSearch = ef
            out["ef_sweep"][ef] = measure_search(run, queries, gt, single)[0]
    if args.phase == "load" and args.nprobe_sweep and isinstance(structure, faiss.IndexIVFScalarQuantizer):
        out["nprobe_sweep"] = {}
        for probes in [int(e) for e in args.nprobe_sweep.split(",")]:  # the same lists, more of them
            if name == "lookalike":
                index.params["ivf_nprobe"] = probes
            else:
                params.nprobe = probes
            out["nprobe_sweep"][probes] = measure_search(run, queries, gt, single)[0]
    out["labels_digest"] = int(np.sum(labels * np.arange(1, labels.size + 1).reshape(labels.shape)) % 2**61)
    return out


def lookalike_build(base: Path, n: int, folder: Path):
    import shutil

    from lookalike.config import Settings
    from lookalike.index import open_index

    shutil.rmtree(folder, ignore_errors=True)
    index = open_index("faiss", settings=Settings(), dim=DIM, create=True, path=folder)
    for start, chunk in chunks(base, n, 10_000):  # the size of an ingest's save batches
        ids = [f"img{start + i}" for i in range(len(chunk))]
        index.add(ids, chunk, [{"path": f"/images/{i}.jpg", "sha256": f"{start + j:064x}"}
                               for j, i in enumerate(ids)])
    del chunk
    return index


# ----- driver ----------------------------------------------------------------------------
def run_worker(args, n: int, name: str, phase: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--n", str(n), "--phase", phase, "--work", args.work,
           "--m", str(args.m), "--ef-construction", str(args.ef_construction), "--ef-search", str(args.ef_search),
           "--nprobe", str(args.nprobe), "--ivf-nprobe", str(args.ivf_nprobe), "--pq-m", str(args.pq_m)] \
        + (["--ef-sweep", args.ef_sweep] if args.ef_sweep else []) \
        + (["--nprobe-sweep", args.nprobe_sweep] if args.nprobe_sweep else [])
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: list[dict]) -> str:
    head = ("| N | structure | RSS build MB | RSS load MB | RSS mmap MB (after 1k queries) | disk MB | build s | "
            "save s | load s | mmap load s | recall@10 | p50 ms | p99 ms |")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        b, l, m = r["build"], r["load"], r["mmap"]
        rows.append(f"| {r['n']:,} | {r['structure']} | {b['rss_build_mb']:,} | {l['rss_load_mb']:,} | "
                    f"{m['rss_load_mb']:,} ({m['rss_after_search_mb']:,}) | {b['disk_mb']:,} | {b['build_s']} | "
                    f"{b['save_s']} | {l['load_s']} | {m['load_s']} | {b['recall@10']} | {l['p50_ms']} | "
                    f"{l['p99_ms']} |")
    return "\n".join(rows)


def main() -> None:
    from lookalike.config import Settings

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--structures", default=",".join(RAW + ("lookalike",)))
    ap.add_argument("--work", default=str(ROOT / ".cache" / "bench" / "index"))
    ap.add_argument("--out", default=str(ROOT / ".cache" / "bench" / "index.json"))
    ap.add_argument("--m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=40)
    ap.add_argument("--ef-search", type=int, default=128)
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--ivf-nprobe", type=int, default=Settings.ivf_nprobe, help="fp16 IVF lists searched")
    ap.add_argument("--ef-sweep", default="", help="efSearch values to measure on the loaded HNSW, e.g. 128,256")
    ap.add_argument("--nprobe-sweep", default="", help="nprobe values to measure on the loaded fp16 IVF, e.g. 4,16")
    ap.add_argument("--pq-m", type=int, default=320)  # 4-bit fast-scan codes: 160 bytes a vector
    ap.add_argument("--worker"), ap.add_argument("--n", type=int), ap.add_argument("--phase")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    Path(args.work).mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    saved = json.loads(out.read_text()) if out.exists() else {"results": []}
    print(f"uptime: {os.getloadavg()}; params: {vars(args)}", flush=True)
    feats = base_features()
    forget_other_mixtures(Path(args.work), feats)
    for n in [int(s) for s in args.sizes.split(",")]:
        prepare(Path(args.work), n, feats)
        for name in args.structures.split(","):
            result = {"n": n, "structure": name}
            for phase in ("build", "load", "mmap"):
                result[phase] = run_worker(args, n, name, phase)
                print(f"{n} {name} {phase}: {json.dumps(result[phase])}", flush=True)
            ok = result["load"]["labels_digest"] == result["mmap"]["labels_digest"]
            for ef, stats in result["load"].get("ef_sweep", {}).items():
                print(f"{n} {name} efSearch={ef}: {json.dumps(stats)}", flush=True)
            for probes, stats in result["load"].get("nprobe_sweep", {}).items():
                print(f"{n} {name} nprobe={probes}: {json.dumps(stats)}", flush=True)
            result["mmap_same_results"] = ok
            result["loadavg"] = os.getloadavg()
            saved["results"] = [r for r in saved["results"] if (r["n"], r["structure"]) != (n, name)] + [result]
            saved["params"] = {k: v for k, v in vars(args).items() if k not in ("worker", "n", "phase")}
            out.write_text(json.dumps(saved, indent=2))
            import shutil

            shutil.rmtree(Path(args.work) / f"{name}-{n}", ignore_errors=True)
    order = {s: i for i, s in enumerate(RAW + ("lookalike",))}
    print(table(sorted(saved["results"], key=lambda r: (r["n"], order.get(r["structure"], 99)))))


if __name__ == "__main__":
    main()
