"""The demo province: Cần Thơ after the 2025 reorganization, with the source systems of its departments.

- ``hub.demo.generate``: writes the land registry (SQLite, optionally PostgreSQL), the civil-status store,
  the education workbooks (optionally MariaDB) and the digital addresses CSV (``hub demo generate``).
- ``hub.demo.civil_status_service``: the simulated civil-status service (``hub demo civil-status-service``).
- ``hub.demo.run``: ``hub demo run`` (``make demo``): generate, serve the source, ingest, serve the hub.

See docs/demo.md.
"""
