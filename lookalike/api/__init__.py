"""HTTP: one shared layer (``http``) with two thin adapters, the FastAPI app (``app``) and the
API Gateway/Lambda handler (``lambda_app``)."""
