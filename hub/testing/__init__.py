"""Helpers for testing the hub and its plugins: the connector conformance suite (``conformance``)."""
