"""Ingest: the connector contract (public API), the plugin registry, the runner and its state."""
