"""Search at query time: the request/response shapes, the service (embed → k-NN → results), the
model-compatibility check, two-step search and the local-mode service factory."""
