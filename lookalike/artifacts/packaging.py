"""Byte-identical build artifacts: ``model.tar.gz`` for SageMaker and ``lambda.zip``.

An archive depends only on the files' paths and contents: entries are sorted, every mtime
is fixed, owners are root and modes are 0644/0755, and gzip carries no timestamp or name.
Building twice from the same inputs gives the same bytes (and the same S3 ETag).
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..fsutil import atomic_write_bytes
from ..limits import MAX_IMAGE_PIXELS

logger = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # .../lookalike
REPO_ROOT = PACKAGE_ROOT.parent
FIXED_MTIME = 315532800  # 1980-01-01 00:00:00 UTC: the earliest time a zip entry can hold
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

# The lookalike modules each artifact needs; nothing else of the package is copied.
# This is the one list of each: the build, its Makefile rules (which depend on the whole
# package) and the tests read it from here.
MODEL_MODULES = ("__init__.py", "errors.py", "imaging.py", "limits.py",
                 "embedders/__init__.py", "embedders/base.py", "embedders/onnx.py", "embedders/preprocess.py")
LAMBDA_MODULES = ("__init__.py", "config.py", "errors.py", "imaging.py", "limits.py", "memory.py",
                  "search/__init__.py", "search/schema.py", "search/service.py", "search/compat.py",
                  "index/__init__.py", "index/base.py", "index/breadth.py", "index/postprocess.py",
                  "index/opensearch/__init__.py", "index/opensearch/client.py", "index/opensearch/mapping.py",
                  "index/opensearch/bulk.py", "index/opensearch/index.py",
                  "cloud/__init__.py", "cloud/aws.py", "cloud/sagemaker_embedder.py", "cloud/storage.py",
                  "cloud/service.py", "api/__init__.py", "api/http.py", "api/lambda_app.py")

Files = Mapping[str, Path | bytes]  # archive name → file on disk or literal content


def _mode(source: Path | bytes) -> int:
    if isinstance(source, Path) and os.access(source, os.X_OK):
        return 0o755
    return 0o644


def _read(source: Path | bytes) -> bytes:
    return source if isinstance(source, bytes) else Path(source).read_bytes()


def write_tar_gz(files: Files, out: Path) -> Path:
    """A gzip'd tar of ``files`` in sorted order with fixed metadata (see module docstring)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            data = _read(files[name])
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), FIXED_MTIME, _mode(files[name])
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    atomic_write_bytes(Path(out), packed.getvalue())
    os.chmod(out, 0o644)  # a build output, readable like any other file (mkstemp made it 0600)
    return Path(out)


def write_zip(files: Files, out: Path) -> Path:
    """A deflated zip of ``files`` in sorted order with fixed dates and Unix modes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = (0o100000 | _mode(files[name])) << 16
            info.create_system = 3  # Unix, so the modes above are honoured
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, _read(files[name]))
    atomic_write_bytes(Path(out), buffer.getvalue())
    os.chmod(out, 0o644)
    return Path(out)


def tree_files(root: Path, prefix: str = "", *, exclude: Iterable[str] = ()) -> dict[str, Path]:
    """All files under ``root`` as ``{prefix + relative posix path: path}``, caches skipped."""
    root = Path(root)
    skip = set(exclude)
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        if any(rel == s or rel.startswith(s.rstrip("/") + "/") for s in skip):
            continue
        out[prefix + rel] = path
    return out


def package_modules(modules: Iterable[str], prefix: str = "lookalike/") -> dict[str, Path]:
    """The given lookalike modules (paths relative to the package) as archive entries."""
    out = {}
    for rel in modules:
        path = PACKAGE_ROOT / rel
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; it is needed in the package")
        out[prefix + rel] = path
    return out


def _platform_args(python_version: str, platforms: Iterable[str]) -> list[str]:
    args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python_version]
    for platform in platforms:
        args += ["--platform", platform]
    return args


def pip_install_target(requirements: Path, target: Path, *, python_version: str = "3.12",
                       platforms: Iterable[str] = ("manylinux2014_x86_64",), no_deps: bool = True) -> None:
    """Install pinned wheels for another interpreter/platform into ``target`` (no bytecode)."""
    if target.exists():
        shutil.rmtree(target)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
           *_platform_args(python_version, platforms), "--target", str(target), "-r", str(requirements)]
    if no_deps:
        cmd.append("--no-deps")
    logger.info("installing %s for cp%s into %s", requirements, python_version.replace(".", ""), target)
    subprocess.run(cmd, check=True)


def pip_download(requirements: Path, constraints: Path, target: Path, *, python_version: str,
                 platforms: Iterable[str]) -> None:
    """Download the wheels of ``requirements`` (and their dependencies) for another interpreter."""
    if target.exists():
        shutil.rmtree(target)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           *_platform_args(python_version, platforms), "-r", str(requirements), "-c", str(constraints),
           "-d", str(target)]
    logger.info("downloading the wheels of %s for cp%s into %s", requirements, python_version.replace(".", ""),
                target)
    subprocess.run(cmd, check=True)


def unzipped_size(path: Path) -> int:
    """Total uncompressed bytes of a zip's entries."""
    with zipfile.ZipFile(path) as zf:
        return sum(info.file_size for info in zf.infolist())


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


# ----- SageMaker model archive ------------------------------------------------------------
MODEL_MANIFEST = "lookalike-model.json"
MODEL_CODE = REPO_ROOT / "model_package" / "code"
MODEL_CONSTRAINTS = REPO_ROOT / "model_package" / "constraints.txt"
# The SageMaker PyTorch inference images run Ubuntu (glibc >= 2.31) on x86_64.
MODEL_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_27_x86_64", "manylinux_2_28_x86_64")
# pip resolves a relative --find-links against the requirements file's folder: code/wheels.
OFFLINE_REQUIREMENTS = b"--no-index\n--find-links wheels\n"


def download_model_wheels(target: Path, *, python_version: str = "3.11") -> Path:
    """The wheels ``code/requirements.txt`` needs, for the inference container's Python."""
    pip_download(MODEL_CODE / "requirements.txt", MODEL_CONSTRAINTS, Path(target), python_version=python_version,
                 platforms=MODEL_PLATFORMS)
    return Path(target)


# The archive's precision when none is chosen, and why (recorded in its manifest). The container
# runs ONNX Runtime only (no OpenVINO), so the archive's engine is always onnxruntime.
ARCHIVE_PRECISIONS = ("fp32", "int8")
ARCHIVE_DEFAULT = "fp32"
ARCHIVE_REASONS = {
    "fp32": "fp32 by default: SageMaker (serverless above all) does not say which CPU runs the model, "
            "ONNX Runtime int8 lost 1.9 points of demo P@2 on an x86 CPU without VNNI (AVX2 only; its u8s8 "
            "kernels can saturate there) and 1.1 even with VNNI (docs/BENCHMARKS.md); build with "
            "PRECISION=int8 for instances known to have VNNI (2.3x batch throughput measured)",
    "int8": "int8 chosen at build time: for instances with AVX-512 VNNI (e.g. ml.c6i, ml.m6i, ml.c7i); "
            "measured 2.3x fp32 throughput there, -1.1 points of demo P@2; without VNNI (AVX2 only) -1.9",
}


def model_archive_files(*, backbone: str, cache_dir: Path, weights: Path | str | None = None,
                        model: Path | None = None, head: Path | None = None,
                        wheels_dir: Path | None = None, precision: str | None = None,
                        max_image_pixels: int = MAX_IMAGE_PIXELS) -> dict[str, Path | bytes]:
    """The entries of ``model.tar.gz``: ONNX model + spec (+ head) at the root, a manifest,
    ``code/inference.py``, ``code/requirements.txt``, the lookalike modules it imports and,
    with ``wheels_dir``, ``code/wheels/`` for an offline install (network-isolated endpoint).
    ``precision`` ``int8`` ships the quantized model instead of the fp32 one (default:
    ``ARCHIVE_DEFAULT``, see ``ARCHIVE_REASONS``)."""
    import json

    from ..embedders import create_embedder

    precision = precision or ARCHIVE_DEFAULT
    if precision not in ARCHIVE_PRECISIONS:
        raise ValueError(f"the model archive runs ONNX Runtime: precision must be fp32 or int8, not {precision}")
    # Loading it here checks the package works and gives the file, name, dim and fingerprint to record.
    embedder = create_embedder(backbone, cache_dir=cache_dir, model=model, weights=weights, head=head,
                               engine="onnxruntime", precision=precision)
    name = Path(model).stem if model is not None else backbone
    model_path = embedder.model_path
    spec_path = model_path.with_suffix(".json")
    files: dict[str, Path | bytes] = {f"{name}.onnx": model_path, f"{name}.json": spec_path}
    manifest = {"format": "lookalike-sagemaker/1", "name": name, "model": f"{name}.onnx", "spec": f"{name}.json",
                "head": None, "dim": embedder.dim, "embedder": embedder.name,
                # The container prepares pixels with the Pillow wheel shipped here, whatever this machine has.
                "fingerprint": embedder.fingerprint_with("pillow"),
                "engine": embedder.engine, "precision": embedder.precision,
                "choice": ARCHIVE_REASONS[precision],
                "limits": {"max_image_pixels": int(max_image_pixels)}}
    if head is not None:
        head = Path(head)
        if head.name in files:
            raise ValueError(f"head file name {head.name} clashes with the model's; rename it")
        files[head.name] = head
        manifest["head"] = head.name
    files[MODEL_MANIFEST] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    files.update(tree_files(MODEL_CODE, "code/"))
    files.update(package_modules(MODEL_MODULES, "code/lookalike/"))
    if wheels_dir is not None:
        wheels = sorted(Path(wheels_dir).glob("*.whl"))
        if not wheels:
            raise FileNotFoundError(f"no wheels in {wheels_dir}; download them with download_model_wheels()")
        files.update({f"code/wheels/{w.name}": w for w in wheels})
        files["code/requirements.txt"] = OFFLINE_REQUIREMENTS + (MODEL_CODE / "requirements.txt").read_bytes()
    return files


def build_model_archive(out: Path, **kwargs) -> Path:
    """Write ``model.tar.gz`` (see :func:`model_archive_files` for the keyword arguments)."""
    return write_tar_gz(model_archive_files(**kwargs), out)


# ----- Lambda zip -------------------------------------------------------------------------
LAMBDA_DIR = REPO_ROOT / "lambda"
# Parts of the dependency wheels the Lambda never loads: Pillow's AVIF codec, font rendering
# and Tk bindings with the libraries only they link (JPEG, PNG, GIF, BMP, TIFF and WebP
# decoding stay); charset-normalizer's compiled twins of pure-Python modules; console
# scripts, type stubs and install records (the latter differ per machine).
LAMBDA_PRUNE_PREFIXES = (
    "bin/", "PIL/_avif.", "PIL/_imagingft.", "PIL/_imagingtk.", "pillow.libs/libavif", "pillow.libs/libfreetype",
    "pillow.libs/libharfbuzz", "pillow.libs/libbrotli", "pillow.libs/libpng16", "charset_normalizer/cd.cpython",
    "charset_normalizer/md.cpython",
)
LAMBDA_PRUNE_RECORDS = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")


def _keep_dependency(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    if name.startswith(LAMBDA_PRUNE_PREFIXES) or name.endswith(".pyi") or base == "py.typed":
        return False
    return not (".dist-info/" in name and base in LAMBDA_PRUNE_RECORDS)


def lambda_zip_files(deps_dir: Path) -> dict[str, Path | bytes]:
    """The entries of ``lambda.zip``: ``handler.py`` at the root, the light lookalike modules,
    and the installed dependencies in ``deps_dir`` minus what the Lambda never loads."""
    files: dict[str, Path | bytes] = {n: p for n, p in tree_files(deps_dir).items() if _keep_dependency(n)}
    files.update(package_modules(LAMBDA_MODULES))
    files["handler.py"] = LAMBDA_DIR / "handler.py"
    return files


def strip_debug_info(root: Path) -> None:
    """Remove DWARF debug sections from the extension modules under ``root`` (Pillow ships them
    unstripped: 3.3 MB → 0.7 MB for ``_imaging``); skipped with a warning without binutils."""
    strip = shutil.which("strip")
    if strip is None:
        logger.warning("`strip` (binutils) not found: the Lambda package keeps debug info and is larger")
        return
    for path in sorted(Path(root).rglob("*.so")):
        subprocess.run([strip, "--strip-debug", str(path)], check=True)


def prepare_lambda_deps(deps_dir: Path, *, python_version: str = "3.12") -> Path:
    """Install ``lambda/requirements.txt`` for the Lambda runtime into ``deps_dir``, stripped."""
    pip_install_target(LAMBDA_DIR / "requirements.txt", deps_dir, python_version=python_version)
    strip_debug_info(deps_dir)
    return deps_dir


def build_lambda_zip(out: Path, *, deps_dir: Path | None = None, python_version: str = "3.12") -> Path:
    """Write ``lambda.zip`` from ``deps_dir`` (prepared by :func:`prepare_lambda_deps`; done
    here when it does not exist yet)."""
    if deps_dir is None or not Path(deps_dir).is_dir():
        deps_dir = prepare_lambda_deps(Path(deps_dir or scratch_dir("lambda-deps-")), python_version=python_version)
    return write_zip(lambda_zip_files(Path(deps_dir)), out)
