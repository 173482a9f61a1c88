"""Open-data publication: release definitions, the de-identification gate, small-cell suppression,
release files (CSV, Parquet, JSON, GeoJSON, datapackage.json), freshness and DCAT-AP 3.

See docs/publish.md.
"""
