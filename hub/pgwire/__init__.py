"""The PostgreSQL wire protocol: psql, JDBC, ODBC and the BI tools built on them, over the one SQL door
(``hub.sql.door``); see docs/analysts.md."""
