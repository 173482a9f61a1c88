"""The live catalogue: metadata models, the loader of catalog/*.yaml, search."""
