"""Liên Thông hub: the shared data platform of a Vietnamese province."""

__version__ = "0.1.0"
