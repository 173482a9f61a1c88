"""The warehouse: Iceberg tables of the datasets (``hub.warehouse.tables``), the data path's writers,
and the query engine every SQL door runs on (``hub.warehouse.engine``)."""
