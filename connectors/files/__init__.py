"""The ``files`` connector: CSV, Excel .xlsx, JSON lines and Parquet files on the hub's disk."""
