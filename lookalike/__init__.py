"""lookalike: content-based image retrieval (embed a collection, search it by example)."""

__version__ = "0.1.0"

__all__ = ["Collection", "__version__"]


def __getattr__(name: str):
    # Lazy: `import lookalike` (the Lambda, `--help`) must not load the embedder or the index.
    if name == "Collection":
        from .collection import Collection

        return Collection
    raise AttributeError(f"module 'lookalike' has no attribute {name!r}")
