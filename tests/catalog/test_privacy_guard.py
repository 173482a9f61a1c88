"""The privacy guard in front of ``open``: the catalog sync refuses an open dataset whose contract has
direct or sensitive personal data; the rule, the name columns, and the scan's folding."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import func, select

from hub.catalog.ckan import fold
from hub.catalog.loader import sync_catalog
from hub.catalog.models import Dataset
from hub.catalog.privacy import name_columns, name_key, open_refusal
from hub.catalog.privacy_scan import fold_array
from hub.contracts import load_contract
from hub.db import session_scope
from hub.errors import CatalogError
from hub.settings import PROJECT_ROOT, Settings

SCHEMAS = PROJECT_ROOT / "schemas"


def _catalog(tmp_path: Path, sharing: str) -> Settings:
    """The repository's catalog, with births' sharing class set to ``sharing``."""
    catalog = tmp_path / "catalog"
    shutil.copytree(PROJECT_ROOT / "catalog", catalog)
    births = catalog / "so-tu-phap" / "births.yaml"
    text = births.read_text(encoding="utf-8")
    assert "sharing: shared" in text
    births.write_text(text.replace("sharing: shared", f"sharing: {sharing}"), encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data", catalog_dir=catalog)
    settings.ensure_dirs()
    return settings


def test_sync_refuses_births_as_open(tmp_path: Path) -> None:
    settings = _catalog(tmp_path, "open")
    with pytest.raises(CatalogError) as caught, session_scope(settings) as session:
        sync_catalog(session, settings)
    message = caught.value.message
    assert message.startswith(f"{settings.catalog_dir / 'so-tu-phap' / 'births.yaml'}#/sharing: ")
    assert caught.value.details["pointer"] == "/sharing"
    assert "civil_status.births cannot be open" in message
    for field in ("child_full_name", "child_personal_id", "father_full_name", "mother_personal_id"):
        assert field in message.split("direct personal data (")[1].split(")")[0]
    assert "sensitive personal data (ethnicity, birth_weight_grams)" in message
    assert "release" in message
    with session_scope(settings) as session:  # nothing was synced
        assert session.scalar(select(func.count()).select_from(Dataset)) == 0
    births = settings.catalog_dir / "so-tu-phap" / "births.yaml"  # as shared, it syncs
    births.write_text(births.read_text(encoding="utf-8").replace("sharing: open", "sharing: shared"), "utf-8")
    with session_scope(settings) as session:
        keys = {d.key: d.sharing for d in sync_catalog(session, settings)}
    assert keys["civil_status.births"] == "shared"
    assert keys["education.schools"] == "open"


def test_rule_per_contract() -> None:
    refused = {
        ref: open_refusal(load_contract(ref, SCHEMAS))
        for ref in ("civil_status/births.v1", "land/parcels.v1", "education/schools.v1")
    }
    assert refused["education/schools.v1"] is None  # no personal field
    parcels = refused["land/parcels.v1"]
    assert parcels is not None
    assert "direct personal data (owner_name, owner_personal_id)" in parcels
    assert "sensitive" not in parcels  # parcels has quasi fields (address, geometry), not sensitive ones


def test_name_columns() -> None:
    births = load_contract("civil_status/births.v1", SCHEMAS)
    assert name_columns(births) == ["child_full_name", "father_full_name", "mother_full_name"]
    assert name_columns(load_contract("land/parcels.v1", SCHEMAS)) == ["owner_name"]
    deaths = load_contract("civil_status/deaths.v1", SCHEMAS)
    assert name_columns(deaths) == ["deceased_full_name", "declarant_full_name"]


def test_name_keys() -> None:
    assert name_key("  Nguyễn  Văn Đạt ") == "nguyen van dat"
    assert name_key("ĐẶNG THỊ Hồng-Nhung") == "dang thi hong nhung"
    assert name_key("An") is None  # one word names nobody in particular


def test_arrow_fold_agrees_with_fold() -> None:
    letters = "aàáảãạăằắẳẵặâầấẩẫậbcdđeèéẻẽẹêềếểễệghiìíỉĩịklmnoòóỏõọôồốổỗộơờớởỡợpqrstuùúủũụưừứửữựvxyỳýỷỹỵ"
    values = [letters, letters.upper(), "Müller Ñoño Øre", "Nguyễn Văn Đạt", "e\u0301 decomposed", ""]
    assert fold_array(pa.array(values)).to_pylist() == [fold(v) for v in values]
