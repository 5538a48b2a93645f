# Evaluation: regenerate the committed reports (see reports/*/results.md).
# Backbone features are cached in $(LOOKALIKE_CACHE_DIR)/features, so reruns embed nothing new.
EVAL_TRAIN_LIMIT ?= 12000
EVAL_ARGS ?=

.PHONY: eval eval-fashion-mnist eval-tuxpaint eval-duplicates

eval: eval-fashion-mnist eval-tuxpaint ## Regenerate reports/fashion-mnist and reports/tuxpaint (first run embeds ~22k images)

eval-fashion-mnist: venv datasets ## Compare the approaches on Fashion-MNIST (10k test split) → reports/fashion-mnist
	$(VENV)/bin/lookalike eval fashion-mnist --train-limit $(EVAL_TRAIN_LIMIT) --out reports/fashion-mnist \
		--models-out models --progress $(EVAL_ARGS)

eval-tuxpaint: venv datasets ## Compare the approaches on the Tux Paint stamps → reports/tuxpaint
	$(VENV)/bin/lookalike eval tuxpaint --out reports/tuxpaint --models-out models --progress $(EVAL_ARGS)

eval-duplicates: venv datasets ## Calibrate the near-duplicate threshold on copy-detection sets → reports/duplicates
	$(PY) scripts/calibrate_duplicates.py $(EVAL_ARGS)
