# Evaluation: regenerate the committed reports (see reports/*/results.md).
# Backbone features are cached in $(LOOKALIKE_CACHE_DIR)/features, so reruns embed nothing new.
EVAL_TRAIN_LIMIT ?= 12000
EVAL_ARGS ?=
# The cached backbone features are fp32 ONNX Runtime ones; the label-free post-processing
# variants (GeM and multi-scale embed again) run in every eval.
EVAL_MODEL ?= --engine onnxruntime --precision fp32

.PHONY: eval eval-fashion-mnist eval-tuxpaint eval-demo eval-duplicates

eval: eval-fashion-mnist eval-tuxpaint eval-demo ## Regenerate reports/fashion-mnist, reports/tuxpaint and reports/demo (first run embeds ~22k images)

eval-fashion-mnist: venv datasets ## Compare the approaches on Fashion-MNIST (10k test split) → reports/fashion-mnist
	$(VENV)/bin/lookalike eval fashion-mnist --train-limit $(EVAL_TRAIN_LIMIT) --out reports/fashion-mnist \
		--models-out models --progress $(EVAL_MODEL) $(EVAL_ARGS)

eval-tuxpaint: venv datasets ## Compare the approaches on the Tux Paint stamps → reports/tuxpaint
	$(VENV)/bin/lookalike eval tuxpaint --out reports/tuxpaint --models-out models --progress $(EVAL_MODEL) $(EVAL_ARGS)

eval-demo: venv ## Compare the approaches on the demo collection (data/demo) → reports/demo
	$(VENV)/bin/lookalike eval data/demo --out reports/demo --pca-dims 16,32,64 --pca-main 32 --progress \
		$(EVAL_MODEL) $(EVAL_ARGS)

eval-duplicates: venv datasets ## Calibrate the near-duplicate threshold on copy-detection sets → reports/duplicates
	$(PY) scripts/calibrate_duplicates.py $(EVAL_ARGS)
