"""The query engine behind every SQL door: one policy, one DuckDB factory, a file per job.

- ``policy``: what SQL from outside may be and which tables it names (the second line of defence);
- ``duck``: the DuckDB factory and the locked engine (no file access; per-cursor tables, the first line);
- ``tables``: table snapshots as the hub hands them to DuckDB (Arrow copies, datasets, streams);
- ``pool``, ``worker``, ``protocol``: worker processes with memory and time limits for SQL from outside;
- ``watchdog``: time limits of the in-process engine (queries the hub builds itself).
"""
