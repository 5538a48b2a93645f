"""lookalike: content-based image retrieval (embed a collection, search it by example)."""

__version__ = "0.1.0"
