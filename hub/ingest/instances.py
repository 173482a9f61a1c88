"""Connector instances: connectors that agencies register at run time, with their secrets.

An instance is a name, a connector (``rest``, ``sql``, ...) and a config checked against that
connector's config model. Secrets are posted as literal values in a separate ``secrets`` map; the
config refers to them as ``{"$secret": "key"}``. The hub stores each value encrypted
(``hub.ingest.secrets``) under the name ``<instance>/<key>`` and rewrites the reference accordingly,
so that an instance can only reach its own secrets. A dataset's ``source.connector`` may name an
instance; the connector registry then calls ``lookup``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.catalog.models import Organization
from hub.errors import ConfigError, ConflictError, HubError, InvalidInputError, NotFoundError
from hub.ingest import secrets as secret_store
from hub.ingest.connector import CheckResult, ConnectorContext
from hub.ingest.models import ConnectorInstance
from hub.settings import Settings

NAME = re.compile(r"^[a-z][a-z0-9_-]{1,99}$")
SECRET_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def lookup(session: Session, name: str) -> tuple[str, dict[str, Any]] | None:
    """``(connector_name, config)`` of the instance ``name``, or None (the registry's fallback)."""
    inst = session.scalar(select(ConnectorInstance).where(ConnectorInstance.name == name))
    if inst is None:
        return None
    return inst.connector, dict(inst.config)


def _qualify(config: Any, instance: str, allowed: set[str], used: set[str]) -> Any:
    """Rewrite ``{"$secret": "key"}`` to ``{"$secret": "<instance>/key"}``; unknown keys are an error."""
    if isinstance(config, dict):
        if set(config) == {"$secret"}:
            key = str(config["$secret"])
            if key.startswith(f"{instance}/"):
                key = key[len(instance) + 1 :]
            if key not in allowed:
                raise InvalidInputError(
                    f"config refers to secret {key!r}, which is not among the posted secrets",
                    {"config": [f"unknown secret {key!r}; post its value in 'secrets'"]},
                )
            used.add(key)
            return {"$secret": f"{instance}/{key}"}
        return {k: _qualify(v, instance, allowed, used) for k, v in config.items()}
    if isinstance(config, list):
        return [_qualify(v, instance, allowed, used) for v in config]
    return config


def _org(session: Session, org: str | None) -> Organization | None:
    if org is None:
        return None
    found = session.scalar(select(Organization).where((Organization.name == org) | (Organization.id == org)))
    if found is None:
        raise NotFoundError(f"organization {org!r} not found")
    return found


def add(
    session: Session,
    settings: Settings,
    *,
    name: str,
    connector: str,
    config: dict[str, Any],
    secrets: dict[str, str] | None = None,
    organization: str | None = None,
    description: str | None = None,
    created_by: str | None = None,
    replace: bool = False,
) -> ConnectorInstance:
    """Register (or, with ``replace``, update) a connector instance. Raises ``InvalidInputError``."""
    from hub.ingest.registry import available_connectors, get_connector_class

    secrets = dict(secrets or {})
    if not NAME.match(name):
        raise InvalidInputError("invalid instance name", {"name": ["2-100 characters of a-z, 0-9, - and _"]})
    if name in {i.name for i in available_connectors()}:
        raise InvalidInputError("name taken", {"name": [f"{name!r} is the name of a connector class"]})
    bad = [k for k in secrets if not SECRET_KEY.match(k)]
    if bad:
        raise InvalidInputError("invalid secret names", {"secrets": [f"invalid name {k!r}" for k in bad]})
    try:
        cls = get_connector_class(connector)
    except HubError as exc:
        raise InvalidInputError(exc.message, {"connector": [exc.message]}) from exc
    existing = session.scalar(select(ConnectorInstance).where(ConnectorInstance.name == name))
    if existing is not None and not replace:
        raise ConflictError(f"connector instance {name!r} already exists")
    if secrets and not settings.secret_key:
        secret_store._fernet(settings)  # raises the clear ConfigError
    stored = {n.split("/", 1)[1] for n in secret_store.names(session, existing.id)} if existing else set()
    used: set[str] = set()
    qualified = _qualify(config, name, set(secrets) | stored, used)
    unused = set(secrets) - used
    if unused:
        raise InvalidInputError(
            "posted secrets are not used by the config",
            {
                "secrets": [
                    f'{k!r} is not referred to as {{"$secret": "{k}"}} in the config' for k in sorted(unused)
                ]
            },
        )
    try:
        cls.from_dict(qualified, ConnectorContext(base_dir=str(settings.data_dir)))
    except ConfigError as exc:
        raise InvalidInputError(exc.message, {"config": [exc.message]}) from exc
    owner = _org(session, organization)
    inst = existing or ConnectorInstance(name=name, connector=connector, config={})
    inst.connector = connector
    inst.config = qualified
    inst.owner_org_id = owner.id if owner else (existing.owner_org_id if existing else None)
    inst.description = (
        description if description is not None else (existing.description if existing else None)
    )
    inst.created_by = inst.created_by or created_by
    if existing is None:
        session.add(inst)
    session.flush()
    for key, value in secrets.items():
        secret_store.store(session, settings, inst.id, f"{name}/{key}", value)
    return inst


def get(session: Session, name: str) -> ConnectorInstance:
    inst = session.scalar(select(ConnectorInstance).where(ConnectorInstance.name == name))
    if inst is None:
        raise NotFoundError(f"no connector instance {name!r} (see `hub connectors instances`)")
    return inst


def list_instances(session: Session, org_ids: set[str] | None = None) -> list[ConnectorInstance]:
    query = select(ConnectorInstance).order_by(ConnectorInstance.name)
    if org_ids is not None:
        query = query.where(ConnectorInstance.owner_org_id.in_(org_ids))
    return list(session.scalars(query))


def remove(session: Session, name: str) -> None:
    inst = get(session, name)
    secret_store.remove_all(session, inst.id)
    session.delete(inst)
    session.flush()


def describe(session: Session, inst: ConnectorInstance) -> dict[str, Any]:
    """What the API and CLI show: the config with references, the names of the secrets, never values."""
    org = session.get(Organization, inst.owner_org_id) if inst.owner_org_id else None
    return {
        "id": inst.id,
        "name": inst.name,
        "connector": inst.connector,
        "config": inst.config,
        "secrets": [n.split("/", 1)[1] for n in secret_store.names(session, inst.id)],
        "organization": org.name if org else None,
        "description": inst.description,
        "created_by": inst.created_by,
        "created": inst.created.isoformat() if inst.created else None,
        "modified": inst.modified.isoformat() if inst.modified else None,
    }


@dataclass
class InstanceCheck:
    name: str
    connector: str
    result: CheckResult


def check(session: Session, settings: Settings, name: str) -> InstanceCheck:
    """Test the instance's connection; configuration and secret problems are reported, not raised."""
    from hub.catalog.spec import SourceSpec
    from hub.ingest.registry import build_connector

    inst = get(session, name)
    try:
        connector = build_connector(settings, SourceSpec(connector=name), session=session)
        result = connector.check()
    except HubError as exc:
        result = CheckResult(False, exc.message, {"code": exc.code})
    return InstanceCheck(inst.name, inst.connector, result)


# --- datasets registered at run time ---------------------------------------------------------------


def _has_secret_literal_ref(value: Any) -> bool:
    if isinstance(value, dict):
        return "$secret" in value or any(_has_secret_literal_ref(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secret_literal_ref(v) for v in value)
    return False


def add_dataset(
    session: Session,
    settings: Settings,
    data: dict[str, Any],
    *,
    organization: str | None = None,
    origin: str = "api",
) -> Any:
    """Validate a dataset definition (the YAML of ``catalog/<agency>/<dataset>.yaml``) and store it in the
    live catalogue. Checks: the spec's keys, the owning organization, the contract, the source's connector
    or instance, the cron schedule. Returns the ``Dataset``. A dataset defined by a catalog file is refused:
    that file stays its source of truth."""
    from pathlib import Path

    from pydantic import ValidationError

    from hub.catalog.loader import upsert_dataset
    from hub.catalog.models import Dataset
    from hub.catalog.spec import DatasetSpec, LoadedDataset
    from hub.contracts import load_contract
    from hub.ingest.registry import available_connectors
    from hub.ingest.scheduler import validate_schedule

    try:
        spec = DatasetSpec.model_validate(data)
    except ValidationError as exc:
        errors: dict[str, list[str]] = {}
        for err in exc.errors():
            errors.setdefault("/".join(str(p) for p in err["loc"]) or "(dataset)", []).append(err["msg"])
        raise InvalidInputError("invalid dataset definition", errors) from exc
    org_name = spec.organization or organization
    if org_name is None:
        raise InvalidInputError("no owner", {"organization": ["name the owning organization"]})
    org = _org(session, org_name)
    assert org is not None
    problems: dict[str, list[str]] = {}
    try:
        load_contract(spec.contract, settings.schemas_dir)
    except HubError as exc:
        problems.setdefault("contract", []).append(exc.message)
    if spec.schedule:
        try:
            validate_schedule(spec.schedule)
        except HubError as exc:
            problems.setdefault("schedule", []).append(exc.message)
    if spec.source is not None:
        classes = {i.name for i in available_connectors()}
        if spec.source.connector not in classes and lookup(session, spec.source.connector) is None:
            problems.setdefault("source/connector", []).append(
                f"no connector or registered connector instance {spec.source.connector!r}"
            )
        if _has_secret_literal_ref(spec.source.config):
            problems.setdefault("source/config", []).append(
                "secrets belong to a connector instance (`hub connectors add --secret`), not to a dataset"
            )
    if problems:
        raise InvalidInputError("invalid dataset definition", problems)
    existing = session.scalar(select(Dataset).where(Dataset.key == spec.id))
    if (
        existing is not None
        and existing.source_file
        and not existing.source_file.startswith(("api:", "cli:"))
    ):
        raise ConflictError(f"dataset {spec.id} is defined by the catalog file {existing.source_file}")
    if existing is not None and existing.owner_org_id not in (None, org.id):
        raise ConflictError(f"dataset {spec.id} belongs to another organization")
    ds = upsert_dataset(session, LoadedDataset(spec=spec, organization=org.name, file=Path(".")))
    ds.source_file = f"{origin}:{spec.id}"
    session.flush()
    return ds
