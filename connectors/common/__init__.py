"""Helpers shared by the built-in connectors, so that no connector imports from inside another:

- ``records``: JSON records (API answers, harvested catalogue entries) to Arrow record batches, column by
  column (``rest``, ``ckan``);
- ``sniff``: what a file really is, from its first bytes, before a text reader starts (``files``, ``xml``).

Reading ahead in a thread is part of the connector toolkit itself: ``hub.ingest.prefetch``.
"""
