"""Offline evaluation and training: datasets, feature caches, metrics, the comparison of the
approaches, triplet heads, PCA, classifiers and reports. Nothing that serves imports this."""
