"""The ``sql`` connector: tables and queries of PostgreSQL, MariaDB/MySQL, SQLite and others."""
