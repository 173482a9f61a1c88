"""The reserved columns a connector may add to its rows, defined once for every layer.

- ``_hub_row`` (int64): the 1-based line or record number of the row in its source;
- ``_hub_source`` (string): where the row came from, e.g. a file name;
- ``_hub_error`` (string): why the connector could not read the row (its data columns are then null);
  null on every readable row.

Connectors write them (``hub.ingest.connector`` re-exports these names as part of the connector
contract), the validator reads them (``hub.contracts.validator``: an ``_hub_error`` row goes to
quarantine with that reason) and the quarantine keeps ``_hub_row`` and ``_hub_source`` beside each
rejected record. This module imports nothing, so that the lowest layer (contracts) and the connector
contract can both depend on it without pulling in each other.
"""

from __future__ import annotations

ROW_COLUMN = "_hub_row"
SOURCE_COLUMN = "_hub_source"
ERROR_COLUMN = "_hub_error"
RESERVED_COLUMNS = (ROW_COLUMN, SOURCE_COLUMN, ERROR_COLUMN)
