# OpenSearch backend against a real cluster. `make test` runs the same contract suite
# (tests/index/test_index_contract.py) against the in-process stand-in emulating OpenSearch 2.11,
# 2.19 and 3.0; this target runs its opensearch-live entries against the cluster you name.
#   make test-opensearch OPENSEARCH_URL=https://localhost:9200 OPENSEARCH_AUTH=basic \
#        OPENSEARCH_USER=admin OPENSEARCH_PASSWORD=...
#   make test-opensearch OPENSEARCH_URL=https://search-x.eu-west-1.es.amazonaws.com \
#        OPENSEARCH_AUTH=sigv4 AWS_REGION=eu-west-1
# Each test creates its own index named lookalike-contract-<random> and deletes it afterwards.
OPENSEARCH_URL ?=
OPENSEARCH_AUTH ?= none

.PHONY: test-opensearch

test-opensearch: venv ## Run the index contract suite against a real cluster (needs OPENSEARCH_URL=...)
	@if [ -z "$(OPENSEARCH_URL)" ]; then \
		echo "test-opensearch needs OPENSEARCH_URL=https://host:port (optional OPENSEARCH_AUTH=none|basic|sigv4," \
		     "OPENSEARCH_USER, OPENSEARCH_PASSWORD, AWS_REGION)" >&2; exit 2; fi
	OPENSEARCH_URL="$(OPENSEARCH_URL)" OPENSEARCH_AUTH="$(OPENSEARCH_AUTH)" \
		$(PY) -m pytest -q -rs tests/index/test_index_contract.py -k "opensearch-live" $(PYTEST_ARGS)
