# lookalike — `make help` lists the targets. Every target installs what it needs itself.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

ENV ?= dev
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_INDEX := .demo/index
export LOOKALIKE_CACHE_DIR ?= $(CURDIR)/.cache/lookalike
export LOOKALIKE_DATASETS_DIR ?= $(CURDIR)/.cache/datasets
# PyTorch is needed only to export models to ONNX and to train heads. Pin the CPU build:
# on the build machines it comes from a local wheel, elsewhere from PyTorch's CPU index.
TORCH := torch==2.13.0
TORCH_INDEX := $(if $(wildcard /opt/wheels/torch-*),,--extra-index-url https://download.pytorch.org/whl/cpu)
# PILLOW_SIMD=1: Pillow-SIMD (AVX2 resizing, ~1.1x demo ingest) instead of Pillow; see scripts/pillow_simd.sh.
export PILLOW_SIMD ?= 0

.PHONY: help venv pillow-simd demo demo-index serve test test-fast bench system-deps datasets clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_INDEX) "$(TORCH)"
	$(PIP) install -q $(TORCH_INDEX) -e '.[export,eval,cloud,fast,test]'
	bash scripts/pillow_simd.sh $(VENV)
	touch $@

venv: $(VENV)/.installed ## Create .venv and install lookalike with all extras (PILLOW_SIMD=1: Pillow-SIMD)

pillow-simd: venv ## Swap Pillow for Pillow-SIMD in .venv (AVX2; ~1.1x demo ingest; pixels round differently: a new fingerprint)
	PILLOW_SIMD=1 bash scripts/pillow_simd.sh $(VENV)

demo-index: venv ## Build the demo index from data/demo (skips what is already indexed)
	$(VENV)/bin/lookalike index data/demo --index-dir $(DEMO_INDEX)

demo: demo-index ## Install, build the demo index, serve API + web page on 127.0.0.1
	@echo
	@echo "  lookalike demo: open http://$(HOST):$(PORT)/   (API docs: http://$(HOST):$(PORT)/docs; Ctrl-C stops)"
	@echo
	$(VENV)/bin/lookalike serve --index-dir $(DEMO_INDEX) --host $(HOST) --port $(PORT)

system-deps: ## Install Debian packages the tests use (Chromium for browser tests)
	bash scripts/system_deps.sh

datasets: ## Unpack the Debian datasets (Fashion-MNIST, Tux Paint stamps) into .cache/datasets
	bash scripts/fetch_datasets.sh

test: venv system-deps datasets sagemaker-venv ## Install everything tests need and run the whole suite
	$(PY) -m pytest -q --timeout=900 $(PYTEST_ARGS)

test-fast: venv ## Unit tests only (no servers, no browser)
	$(PY) -m pytest -q -m "not slow and not browser and not integration" $(PYTEST_ARGS)

bench: venv datasets ## Measure model floor, ingest throughput, API latency, memory, load; see docs/BENCHMARKS.md
	$(PY) scripts/bench.py $(BENCH_ARGS)
	$(PY) scripts/bench_load.py $(BENCH_LOAD_ARGS)
	$(PY) scripts/bench_index.py $(BENCH_INDEX_ARGS)
	$(PY) scripts/bench_precision.py $(BENCH_PRECISION_ARGS)

clean: ## Remove the virtualenv, caches, build outputs and the demo index
	rm -rf $(VENV) .cache .demo dist build .pytest_cache test-artifacts

-include mk/*.mk
