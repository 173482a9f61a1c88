"""Loads ``catalog/<agency>/*.yaml`` into specs, and syncs them into the live catalogue.

Errors name the file and the JSON pointer of the wrong key (``catalog/so-tu-phap/births.yaml#/sharing``).
A dataset whose contract has direct or sensitive personal data cannot be ``open``
(``hub.catalog.privacy.open_refusal``): the sync refuses it before it changes anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.catalog.models import Dataset, Organization
from hub.catalog.privacy import open_refusal_for
from hub.catalog.spec import DatasetSpec, LoadedDataset, OrganizationSpec
from hub.errors import CatalogError, ContractError, NotFoundError
from hub.settings import Settings

ORG_FILE = "organization.yaml"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise CatalogError(f"not valid YAML{where}: {exc}", file=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise CatalogError(f"not UTF-8 text: {exc}", file=str(path)) from exc
    if not isinstance(data, dict):
        raise CatalogError("must be a mapping of keys to values", file=str(path), pointer="")
    return data


def _pointer(loc: tuple[int | str, ...]) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in loc)


def _validate(model: type[DatasetSpec] | type[OrganizationSpec], data: dict[str, Any], path: Path) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        more = f" (and {len(exc.errors()) - 1} more problems)" if len(exc.errors()) > 1 else ""
        raise CatalogError(f"{err['msg']}{more}", file=str(path), pointer=_pointer(err["loc"])) from exc


def load_organization(folder: Path) -> OrganizationSpec:
    path = folder / ORG_FILE
    if not path.exists():
        return OrganizationSpec.model_validate({"name": folder.name, "title": {"vi": folder.name}})
    org = _validate(OrganizationSpec, _read_yaml(path), path)
    assert isinstance(org, OrganizationSpec)
    return org


def load_dataset_file(path: Path, organization: str | None = None) -> LoadedDataset:
    spec = _validate(DatasetSpec, _read_yaml(path), path)
    assert isinstance(spec, DatasetSpec)
    return LoadedDataset(
        spec=spec, organization=spec.organization or organization or path.parent.name, file=path
    )


def load_catalog(catalog_dir: Path) -> tuple[list[OrganizationSpec], list[LoadedDataset]]:
    """Every organization and dataset under ``catalog_dir``; duplicate dataset ids are an error."""
    orgs: list[OrganizationSpec] = []
    datasets: list[LoadedDataset] = []
    seen: dict[str, Path] = {}
    if not catalog_dir.is_dir():
        return orgs, datasets
    for folder in sorted(p for p in catalog_dir.iterdir() if p.is_dir()):
        org = load_organization(folder)
        orgs.append(org)
        for path in sorted(folder.glob("*.y*ml")):
            if path.name == ORG_FILE:
                continue
            loaded = load_dataset_file(path, org.name)
            if loaded.spec.id in seen:
                raise CatalogError(
                    f"dataset id {loaded.spec.id} is also defined in {seen[loaded.spec.id]}",
                    file=str(path),
                    pointer="/id",
                )
            seen[loaded.spec.id] = path
            datasets.append(loaded)
    return orgs, datasets


def upsert_organization(session: Session, spec: OrganizationSpec) -> Organization:
    org = session.scalar(select(Organization).where(Organization.name == spec.name))
    if org is None:
        org = Organization(name=spec.name, title=spec.title.vi, extras={})
        session.add(org)
    org.title = spec.title.vi
    org.title_en = spec.title.en
    org.description = spec.description.vi if spec.description else None
    org.description_en = spec.description.en if spec.description else None
    org.email = spec.email
    org.image_url = spec.image_url
    org.extras = dict(spec.extras)
    session.flush()
    return org


def check_open(loaded: LoadedDataset, schemas_dir: Path) -> None:
    """Refuse an ``open`` dataset whose contract has direct or sensitive personal data (or cannot be read:
    then nobody can tell), naming the file, the pointer ``/sharing`` and the fields."""
    spec = loaded.spec
    if spec.sharing != "open":
        return
    file = str(loaded.file) if loaded.file != Path(".") else None  # "." : defined through the API
    try:
        refusal = open_refusal_for(spec.contract, schemas_dir, spec.id)
    except ContractError as exc:
        raise CatalogError(
            f"{spec.id} is open, but its contract cannot be read to check for personal data: {exc.message}",
            file=file,
            pointer="/contract",
        ) from exc
    if refusal:
        raise CatalogError(refusal, file=file, pointer="/sharing")


def upsert_dataset(session: Session, loaded: LoadedDataset, *, schemas_dir: Path | None = None) -> Dataset:
    """Write ``loaded`` into the live catalogue, after ``check_open`` (contracts from ``schemas_dir``,
    default: those of the settings the session carries)."""
    spec = loaded.spec
    if spec.sharing == "open":
        settings = session.info.get("settings")
        if schemas_dir is None and isinstance(settings, Settings):
            schemas_dir = settings.schemas_dir
        if schemas_dir is None:
            raise CatalogError(
                f"{spec.id} is open, but no contracts folder is known to check it for personal data",
                file=str(loaded.file),
            )
        check_open(loaded, schemas_dir)
    org = session.scalar(select(Organization).where(Organization.name == loaded.organization))
    if org is None:
        raise CatalogError(f"organization {loaded.organization!r} does not exist", file=str(loaded.file))
    ds = session.scalar(select(Dataset).where(Dataset.key == spec.id))
    if ds is None:
        ds = Dataset(key=spec.id, name=spec.ckan_name, title=spec.title.vi, spec={})
        session.add(ds)
    ds.owner_org_id = org.id
    ds.title = spec.title.vi
    ds.title_en = spec.title.en
    ds.notes = spec.description.vi if spec.description else None
    ds.notes_en = spec.description.en if spec.description else None
    ds.sharing = spec.sharing
    ds.license_id = spec.license
    ds.contract = spec.contract
    ds.spec = spec.model_dump(mode="json")
    ds.source_file = str(loaded.file)
    ds.state = "active"
    session.flush()
    return ds


def sync_catalog(session: Session, settings: Settings) -> list[Dataset]:
    """Load ``settings.catalog_dir`` and upsert every organization and dataset it defines (nothing when
    an open dataset's contract has direct or sensitive personal data: ``check_open``)."""
    orgs, datasets = load_catalog(settings.catalog_dir)
    for d in datasets:
        check_open(d, settings.schemas_dir)
    for org in orgs:
        upsert_organization(session, org)
    return [upsert_dataset(session, d, schemas_dir=settings.schemas_dir) for d in datasets]


def get_dataset(session: Session, key_or_name_or_id: str) -> Dataset:
    """A dataset by key (``civil_status.births``), CKAN name or id."""
    ds = session.scalar(
        select(Dataset).where(
            (Dataset.key == key_or_name_or_id)
            | (Dataset.name == key_or_name_or_id)
            | (Dataset.id == key_or_name_or_id)
        )
    )
    if ds is None or ds.state == "deleted":
        raise NotFoundError(f"dataset {key_or_name_or_id!r} not found (see `hub datasets list`)")
    return ds


def dataset_spec(ds: Dataset) -> DatasetSpec:
    return DatasetSpec.model_validate(ds.spec)
