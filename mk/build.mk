# Cloud artifacts: the SageMaker model archive and the Lambda package (both byte-reproducible).
#   make build                     dist/model.tar.gz + dist/lambda.zip
#   make build BACKBONE=efficientnet-lite0 HEAD=path/to/head.onnx SAGEMAKER_PYTHON=3.11 LAMBDA_PYTHON=3.12
#   make build-model PRECISION=int8  the int8 model: ~2x throughput, but only for instances with AVX-512
#                                  VNNI (ml.c6i, ml.m6i, ...). fp32 by default: SageMaker serverless does
#                                  not say which CPU runs it, and int8 kernels can saturate without VNNI
#   make sagemaker-local           serve dist/model.tar.gz under the real SageMaker serving stack
#                                  (TorchServe + the toolkit, own venv) on 127.0.0.1:$(SAGEMAKER_PORT)
#   make sagemaker-venv            only create that venv (.cache/sagemaker-container-venv, once)
BACKBONE ?= efficientnet-lite2
HEAD ?=
PRECISION ?= fp32
LAMBDA_PYTHON ?= 3.12
SAGEMAKER_PYTHON ?= 3.11
SAGEMAKER_PORT ?= 8080
DIST := dist
SAGEMAKER_VENV := .cache/sagemaker-container-venv
LAMBDA_DEPS := build/lambda-deps-$(LAMBDA_PYTHON)
MODEL_WHEELS := build/model-wheels-py$(SAGEMAKER_PYTHON)
# Which lookalike modules each artifact ships is listed once, in lookalike/artifacts/packaging.py
# (MODEL_MODULES, LAMBDA_MODULES); the rules depend on the whole package so that list is never
# restated here.
PACKAGE_SOURCES := $(shell find lookalike -name '*.py' -not -path '*/__pycache__/*')
MODEL_INPUTS := model_package/build.py model_package/constraints.txt $(wildcard model_package/code/*) \
	$(PACKAGE_SOURCES) $(HEAD)
LAMBDA_INPUTS := lambda/build.py lambda/handler.py $(PACKAGE_SOURCES)

.PHONY: build build-model build-lambda sagemaker-local sagemaker-venv

build: $(DIST)/model.tar.gz $(DIST)/lambda.zip ## Build dist/model.tar.gz (SageMaker) and dist/lambda.zip (Lambda)

build-model: $(DIST)/model.tar.gz ## Build only the SageMaker model archive (BACKBONE=..., HEAD=head.onnx, PRECISION=fp32|int8: int8 only for VNNI instances)

build-lambda: $(DIST)/lambda.zip ## Build only the Lambda package (LAMBDA_PYTHON=3.12)

$(MODEL_WHEELS).done: model_package/code/requirements.txt model_package/constraints.txt | venv
	$(PY) model_package/build.py --wheels-only --wheels-dir $(MODEL_WHEELS) --python-version $(SAGEMAKER_PYTHON)
	touch $@

$(DIST)/model.tar.gz: $(MODEL_WHEELS).done $(MODEL_INPUTS) | venv
	$(PY) model_package/build.py --out $@ --backbone $(BACKBONE) $(if $(HEAD),--head $(HEAD)) \
		--precision $(PRECISION) --wheels-dir $(MODEL_WHEELS) --python-version $(SAGEMAKER_PYTHON)

$(LAMBDA_DEPS).done: lambda/requirements.txt | venv
	$(PY) lambda/build.py --deps-only --deps-dir $(LAMBDA_DEPS) --python-version $(LAMBDA_PYTHON)
	touch $@

$(DIST)/lambda.zip: $(LAMBDA_DEPS).done $(LAMBDA_INPUTS) | venv
	$(PY) lambda/build.py --out $@ --deps-dir $(LAMBDA_DEPS) --python-version $(LAMBDA_PYTHON)

# TorchServe + the sagemaker-pytorch-inference toolkit, versions of SageMaker's PyTorch CPU image,
# without lookalike (the archive brings what it needs). The script is idempotent (a marker file).
sagemaker-venv: ## Create the SageMaker serving stack's own virtualenv (TorchServe + toolkit; ~2 min once)
	bash scripts/sagemaker_container_venv.sh $(SAGEMAKER_VENV)

sagemaker-local: $(DIST)/model.tar.gz sagemaker-venv | venv ## Serve dist/model.tar.gz under TorchServe + the SageMaker toolkit; InvokeEndpoint API on 127.0.0.1 (SAGEMAKER_PORT=8080)
	$(PY) scripts/sagemaker_local.py --archive $(DIST)/model.tar.gz --venv $(SAGEMAKER_VENV) --port $(SAGEMAKER_PORT)
