# LocalStack (community, no Docker) for the Terraform stack: scripts/localstack.sh keeps it in
# .cache/localstack-venv (Python 3.13 with pinned packages, plus tflocal).
#   make test-localstack            apply envs/dev to a LocalStack of its own, check it, search the page, destroy
#   make localstack-start           a LocalStack on 127.0.0.1:$(LOCALSTACK_PORT) to try things by hand
#   make localstack-stop            stop that one (by its process group)
LOCALSTACK_PORT ?= 4566
LOCALSTACK := bash scripts/localstack.sh

.PHONY: localstack-install localstack-start localstack-stop test-localstack

localstack-install: ## Install LocalStack + tflocal into .cache/localstack-venv (once; needs Python >= 3.12)
	@$(LOCALSTACK) install >/dev/null

# `make test` runs tests/terraform/test_localstack.py: install LocalStack before pytest starts.
test: localstack-install

localstack-start: localstack-install ## Run LocalStack on 127.0.0.1:$(LOCALSTACK_PORT) in the background (state in .cache/localstack)
	@url="$$($(LOCALSTACK) start $(LOCALSTACK_PORT))"; echo "LocalStack: $$url   (log: .cache/localstack/localstack.log; make localstack-stop)"

localstack-stop: ## Stop the LocalStack that localstack-start ran
	$(LOCALSTACK) stop

test-localstack: venv localstack-install ## Apply envs/dev to LocalStack with tflocal, check it, search its S3 website page in Chromium, destroy
	$(PY) -m pytest -q tests/terraform/test_localstack.py $(PYTEST_ARGS)
