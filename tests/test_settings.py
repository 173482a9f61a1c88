"""Settings: derived paths and the public URL of a running server."""

from __future__ import annotations

from pathlib import Path

from hub.settings import Settings


def test_paths_derive_from_the_data_directory(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    assert s.warehouse_path == tmp_path / "warehouse"
    assert s.database_url == f"sqlite:///{tmp_path / 'hub.db'}"


def test_site_url_follows_the_server_unless_it_was_given(tmp_path: Path) -> None:
    served = Settings(data_dir=tmp_path).for_server("0.0.0.0", 8099)
    assert served.site_url == "http://127.0.0.1:8099"
    given = Settings(data_dir=tmp_path, site_url="https://data.cantho.gov.vn")
    assert given.for_server("0.0.0.0", 8099).site_url == "https://data.cantho.gov.vn"
