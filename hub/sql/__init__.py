"""SQL written outside the hub, from text to rows: the doors' one path (``hub.sql.door``)."""
