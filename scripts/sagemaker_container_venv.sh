#!/usr/bin/env bash
# Create VENV_DIR with the serving stack of SageMaker's PyTorch CPU inference image (TorchServe +
# the sagemaker-pytorch-inference toolkit), without lookalike: the model archive must bring what
# it needs. Idempotent: a marker file records the package list, so a re-run is instant.
#   bash scripts/sagemaker_container_venv.sh .cache/sagemaker-container-venv
# Env: SAGEMAKER_CONTAINER_PYTHON=/path/to/python3.11 to choose the interpreter.
set -euo pipefail
VENV=${1:?usage: sagemaker_container_venv.sh VENV_DIR}

# Versions of aws/deep-learning-containers pytorch/inference/docker/2.6/py3/
# Dockerfile.sagemaker.cpu.core_packages.json (torchserve/torch-model-archiver 0.12.0,
# sagemaker-pytorch-inference 2.0.25). The image uses Python 3.12 and torch 2.6; here torch is
# 2.13.0, the only CPU wheel on the build machines (/opt/wheels, cp311), hence Python 3.11:
# any other torch version would pull GBs of CUDA packages.
# No separate `sagemaker-inference`: since aws/sagemaker-pytorch-inference-toolkit #157 the
# toolkit ships its own copy of the `sagemaker_inference` package (src/sagemaker_inference/),
# and the image's Dockerfile.cpu installs only sagemaker-pytorch-inference. Installing the
# sagemaker-inference 1.10.1 distribution as well would overwrite those files with other ones.
# setuptools<81: torchserve.py imports pkg_resources (the image pins "setuptools<82.0.0").
PACKAGES=(torch==2.13.0 torchserve==0.12.0 torch-model-archiver==0.12.0
          sagemaker-pytorch-inference==2.0.25 pyyaml "setuptools<81")
MARKER="$VENV/.sagemaker-container-installed"
# What the image has before any model archive: the toolkit pip-installs code/requirements.txt into
# this same venv at every start, so the bench can return to this list to time a container's first start.
BASELINE="$VENV/.sagemaker-container-baseline.txt"
WANT="${PACKAGES[*]}"

# TorchServe's frontend is Java (the image installs openjdk-17-jdk).
if ! java -version >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing openjdk-17-jre-headless with apt-get" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null
fi
java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
[ "${java_major:-0}" -ge 17 ] || { echo "TorchServe 0.12 needs Java >= 17, found ${java_major:-none}" >&2; exit 1; }

if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$WANT" ] && [ -f "$BASELINE" ] && [ -x "$VENV/bin/torchserve" ]; then
  exit 0
fi

pick_python() {
  if [ -n "${SAGEMAKER_CONTAINER_PYTHON:-}" ]; then echo "$SAGEMAKER_CONTAINER_PYTHON"; return; fi
  for candidate in /root/.pyenv/versions/3.11*/bin/python3.11 /usr/local/bin/python3.11 /usr/bin/python3.11 \
                   "$(command -v python3.11 || true)"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c 'import venv, ensurepip' 2>/dev/null \
      && { echo "$candidate"; return; }
  done
  echo "no Python 3.11 with venv/ensurepip found (set SAGEMAKER_CONTAINER_PYTHON)" >&2; exit 1
}
PYTHON=$(pick_python)
started=$(date +%s)
rm -f "$MARKER"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# Outside the build machines torch's CPU build comes from PyTorch's CPU index, never CUDA's.
EXTRA=(); compgen -G "/opt/wheels/torch-2.13.0*" >/dev/null || EXTRA=(--extra-index-url https://download.pytorch.org/whl/cpu)
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "${EXTRA[@]}" "${PACKAGES[@]}"
"$VENV/bin/python" - <<'EOF'
import importlib.metadata as md, torch, pkg_resources  # noqa: F401  (fail here, not at serve time)
from sagemaker_pytorch_serving_container import serving  # noqa: F401
assert not torch.cuda.is_available() and "+cpu" in torch.__version__, torch.__version__
for dist in ("torch", "torchserve", "torch-model-archiver", "sagemaker-pytorch-inference", "setuptools"):
    print(f"  {dist}=={md.version(dist)}")
EOF
"$VENV/bin/python" -m pip freeze --all > "$BASELINE"
echo "$WANT" > "$MARKER"
echo "sagemaker container venv ready in $VENV ($(( $(date +%s) - started )) s)" >&2
