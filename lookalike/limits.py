"""Request limits and defaults, defined once.

Plain constants (standard library only) so every edge reads the same numbers: ``Settings``
takes its defaults from here, the Lambda and ``inference.py`` ship this module, and the web
page gets them generated into ``web/limits.js`` (``python -m lookalike.artifacts.web_limits``).
"""

from __future__ import annotations

# API Gateway + Lambda cap a synchronous request at 6 MB, and so does a SageMaker real-time
# invocation; the local API uses the same limit so a request that works locally also works
# in the cloud.
MAX_REQUEST_BYTES = 6 * 1024 * 1024
# Decoding bombs: images above this many pixels are refused before their pixels are decoded.
MAX_IMAGE_PIXELS = 40_000_000
K_DEFAULT = 5
K_MAX = 100
# Pixels of large images decoded at once (see imaging.DecodeBudget): one image at the pixel
# limit (~150 MB while decoded and resized) plus small ones. Two at a time measured no faster
# on two cores and peaked 50% higher. A large image waits up to DECODE_WAIT_SECONDS for its
# turn, then gets a 503 with Retry-After.
DECODE_BUDGET_PIXELS = 48_000_000
DECODE_WAIT_SECONDS = 30.0
# Cosine similarity from which two images are near duplicates (`lookalike dupes`, GET /duplicates),
# calibrated on the copy-detection set: reports/duplicates/results.md.
DUPLICATE_THRESHOLD = 0.87
BATCH_SIZE = 16  # images per inference batch (ingest, the model endpoint)
MAX_IMAGES_PER_REQUEST = 64  # images in one JSON batch sent to the model endpoint

WEB = {"maxBodyBytes": MAX_REQUEST_BYTES, "kDefault": K_DEFAULT, "kMax": K_MAX}  # what the web page needs
