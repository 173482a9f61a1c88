"""The warehouse: Iceberg tables of the datasets (``Warehouse``) and DuckDB over their snapshots
(``hub.warehouse.query``)."""

from hub.warehouse.tables import SnapshotInfo, Warehouse

__all__ = ["SnapshotInfo", "Warehouse"]
