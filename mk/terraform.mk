# AWS stack with Terraform: `make plan|deploy|destroy ENV=dev|prod`, plus fmt/validate/checkov.
# The state backend of each environment is configured in terraform/envs/$(ENV)/backend.hcl
# (copy backend.hcl.example). Set AUTO_APPROVE=1 to skip Terraform's confirmation prompt.
# `make ingest ENV=prod IMAGES=s3://BUCKET/PREFIX/` embeds images already in S3 with a SageMaker
# Batch Transform job and loads them into OpenSearch (INGEST_ARGS: more `lookalike cloud-batch` flags).

TERRAFORM ?= terraform
TF_DIR := terraform/envs/$(ENV)
TF_BACKEND_CONFIG ?= backend.hcl
TF_ARGS ?=
IMAGES ?=
INGEST_ARGS ?=
AUTO_APPROVE ?=
CHECKOV_VENV := .cache/checkov-venv
# Where the hashicorp providers are pre-installed (/opt/tf-plugins) install them from there;
# elsewhere the public registry applies. Evaluated per command, so `make clean` is harmless.
TF = TF_CLI_CONFIG_FILE="$$(bash scripts/tf_cli_config.sh)" $(TERRAFORM)
TF_APPROVE = $(if $(AUTO_APPROVE),-auto-approve)

.PHONY: tf-init plan deploy ingest ingest-images destroy tf-fmt tf-validate tf-check tf-outputs

tf-init:
	@test -d "$(TF_DIR)" || { echo "No Terraform environment $(TF_DIR) (ENV=dev or ENV=prod)"; exit 1; }
	@test -f "$(TF_DIR)/$(TF_BACKEND_CONFIG)" || { echo "Missing $(TF_DIR)/$(TF_BACKEND_CONFIG): copy $(TF_DIR)/backend.hcl.example and name your state bucket."; exit 1; }
	$(TF) -chdir=$(TF_DIR) init -input=false -backend-config=$(TF_BACKEND_CONFIG)

plan: build tf-init ## Show what `deploy` would change in AWS (ENV=dev|prod)
	$(TF) -chdir=$(TF_DIR) plan -input=false $(TF_ARGS)

deploy: build tf-init $(if $(IMAGES),venv) ## Build, apply the stack (web page + config.js included); IMAGES=DIR also uploads + indexes DIR
	$(TF) -chdir=$(TF_DIR) apply $(TF_APPROVE) $(TF_ARGS)
ifneq ($(IMAGES),)
	@# cloud-index reads the same LOOKALIKE_* settings as the Lambda, from the stack's outputs.
	set -a; eval "$$($(TF) -chdir=$(TF_DIR) output -json cloud_index_environment | \
	  $(PY) -c 'import json, shlex, sys; [print(f"{k}={shlex.quote(str(v))}") for k, v in json.load(sys.stdin).items()]')"; set +a; \
	$(VENV)/bin/lookalike cloud-index "$(IMAGES)"
endif
	@echo; echo "  Search page: $$($(TF) -chdir=$(TF_DIR) output -raw website_url)"
	@echo "  API:         $$($(TF) -chdir=$(TF_DIR) output -raw api_url)/search   (key: make tf-outputs ENV=$(ENV))"; echo

ingest-images:
	@case "$(IMAGES)" in s3://*) ;; *) echo "Usage: make ingest ENV=$(ENV) IMAGES=s3://BUCKET/PREFIX/ (a folder on disk: make deploy IMAGES=DIR)"; exit 1;; esac

ingest: ingest-images tf-init venv ## Embed IMAGES=s3://BUCKET/PREFIX/ with a SageMaker Batch Transform job, then load OpenSearch (ENV=dev|prod)
	@# cloud-batch reads the stack's settings (transform model, prefixes, KMS key, job defaults) from its outputs.
	settings="$$($(TF) -chdir=$(TF_DIR) output -json batch_ingest_environment | \
	  $(PY) -c 'import json, shlex, sys; env = json.load(sys.stdin) or sys.exit("batch ingest is off in this stack (batch.create or sagemaker.create = false)"); [print(f"{k}={shlex.quote(str(v))}") for k, v in env.items()]')"; \
	set -a; eval "$$settings"; set +a; \
	$(VENV)/bin/lookalike cloud-batch "$(IMAGES)" $(INGEST_ARGS)

destroy: tf-init ## Delete the whole stack of ENV (prod buckets with content are kept unless force_destroy)
	$(TF) -chdir=$(TF_DIR) destroy $(TF_APPROVE) $(TF_ARGS)

tf-outputs: tf-init ## Print the stack's outputs, API key included
	$(TF) -chdir=$(TF_DIR) output
	@echo "api_key = $$($(TF) -chdir=$(TF_DIR) output -raw api_key 2>/dev/null || echo null)"

tf-fmt: ## Format all Terraform files
	$(TF) fmt -recursive terraform tests/terraform/fixtures

tf-validate: ## Validate every Terraform module and environment offline (no backend, no AWS)
	@for d in terraform/modules/* terraform/envs/*; do \
	  echo "== $$d"; \
	  $(TF) -chdir=$$d init -backend=false -input=false >/dev/null && $(TF) -chdir=$$d validate -no-color || exit 1; \
	done

$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --upgrade pip
	$(CHECKOV_VENV)/bin/pip install -q checkov
	touch $@

tf-check: $(CHECKOV_VENV)/.installed ## Static security checks of the Terraform code (checkov, offline)
	$(CHECKOV_VENV)/bin/checkov -d terraform --skip-download --quiet --compact
