"""``/api/v1/connectors`` and ``POST /api/v1/datasets``: agencies register their own connectors and datasets.

- ``GET /api/v1/connectors``: the installed connector types and the instances the caller may see.
- ``POST /api/v1/connectors``: register an instance (``name``, ``connector``, ``config``, ``secrets``);
  the config is checked against the connector's model; secrets are stored encrypted and never returned.
- ``GET|DELETE /api/v1/connectors/{name}``, ``POST /api/v1/connectors/{name}/check``.
- ``POST /api/v1/datasets``: register a dataset definition (the JSON form of a catalog YAML file). An
  ``open`` one whose contract has direct or sensitive personal data is refused (409, naming the fields;
  ``hub.catalog.privacy``): such data reaches the public through a release.

Every call needs the ``connectors:manage`` scope and membership (admin or editor) of the owning
organization, or sysadmin rights. Changes are written to the audit log, with secret names only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from hub.api.deps import SessionDep, SettingsDep, V1PrincipalDep
from hub.auth import audit
from hub.auth.principal import Principal
from hub.catalog.models import Organization
from hub.catalog.privacy import open_refusal_for
from hub.errors import AccessDeniedError, AuthenticationError, ContractError, InvalidInputError, NotFoundError
from hub.ingest import instances

router = APIRouter(prefix="/api/v1", tags=["connectors"])
SCOPE = "connectors:manage"


class ConnectorIn(BaseModel):
    name: str = Field(description="Instance name; datasets use it as source.connector.")
    connector: str = Field(description="Connector type: rest, sql, xml, ckan, files, or a plugin's name.")
    config: dict[str, Any] = Field(description='Config; secrets as {"$secret": "key"} references.')
    secrets: dict[str, str] = Field(
        default_factory=dict, description="Secret values by key; stored encrypted."
    )
    organization: str | None = Field(default=None, description="Owner (name or id); default: the caller's.")
    description: str | None = None
    replace: bool = Field(default=False, description="Update the instance if it exists.")


def _scoped(principal: Principal) -> None:
    if principal.is_anonymous:
        raise AuthenticationError("a token with the connectors:manage scope is required")
    if not principal.has_scope(SCOPE):
        raise AccessDeniedError(f"the token lacks the {SCOPE} scope")


def _allowed(principal: Principal, org_id: str | None) -> None:
    _scoped(principal)
    if principal.sysadmin:
        return
    if org_id is None:
        raise AccessDeniedError("only sysadmins manage connectors that belong to no organization")
    role = principal.org_roles.get(org_id)
    if principal.org_id == org_id and principal.kind == "client":
        return
    if role not in ("admin", "editor"):
        raise AccessDeniedError("only admins and editors of the owning organization manage its connectors")


def _owner(session: SessionDep, principal: Principal, ref: str | None) -> Organization | None:
    if ref is None:
        orgs = principal.orgs()
        if principal.org_id:
            ref = principal.org_id
        elif len(orgs) == 1:
            ref = next(iter(orgs))
        elif not principal.sysadmin:
            raise InvalidInputError("name the owning organization", {"organization": ["required"]})
        else:
            return None
    org = session.query(Organization).filter((Organization.name == ref) | (Organization.id == ref)).first()
    if org is None:
        raise NotFoundError(f"organization {ref!r} not found")
    return org


@router.get("/connectors", summary="Installed connectors and registered instances")
def list_connectors(session: SessionDep, principal: V1PrincipalDep) -> dict[str, Any]:
    from hub.ingest.registry import available_connectors

    _scoped(principal)
    visible = None if principal.sysadmin else principal.orgs()
    return {
        "connectors": [
            {"name": i.name, "version": i.version, "package": i.package, "description": i.description}
            for i in available_connectors()
        ],
        "instances": [instances.describe(session, i) for i in instances.list_instances(session, visible)],
    }


@router.post("/connectors", status_code=201, summary="Register a connector instance")
def add_connector(
    body: ConnectorIn, session: SessionDep, settings: SettingsDep, principal: V1PrincipalDep
) -> dict[str, Any]:
    _scoped(principal)
    org = _owner(session, principal, body.organization)
    _allowed(principal, org.id if org else None)
    if body.replace:
        existing = instances.lookup(session, body.name)
        if existing is not None:
            _allowed(principal, instances.get(session, body.name).owner_org_id)
    inst = instances.add(
        session,
        settings,
        name=body.name,
        connector=body.connector,
        config=body.config,
        secrets=body.secrets,
        organization=org.id if org else None,
        description=body.description,
        created_by=principal.subject or principal.client_id,
        replace=body.replace,
    )
    audit.record(
        session,
        "connector.add",
        principal,
        details={"name": inst.name, "connector": inst.connector, "secrets": sorted(body.secrets)},
    )
    return instances.describe(session, inst)


@router.get("/connectors/{name}", summary="A registered connector instance (never its secrets)")
def get_connector(name: str, session: SessionDep, principal: V1PrincipalDep) -> dict[str, Any]:
    inst = instances.get(session, name)
    _allowed(principal, inst.owner_org_id)
    return instances.describe(session, inst)


@router.delete("/connectors/{name}", status_code=204, summary="Remove a connector instance and its secrets")
def delete_connector(name: str, session: SessionDep, principal: V1PrincipalDep) -> None:
    inst = instances.get(session, name)
    _allowed(principal, inst.owner_org_id)
    instances.remove(session, name)
    audit.record(session, "connector.remove", principal, details={"name": name})


@router.post("/connectors/{name}/check", summary="Test the connection of a connector instance")
def check_connector(
    name: str, session: SessionDep, settings: SettingsDep, principal: V1PrincipalDep
) -> dict[str, Any]:
    inst = instances.get(session, name)
    _allowed(principal, inst.owner_org_id)
    outcome = instances.check(session, settings, name)
    return {
        "name": name,
        "connector": outcome.connector,
        "ok": outcome.result.ok,
        "message": outcome.result.message,
        "details": outcome.result.details,
    }


@router.post("/datasets", status_code=201, summary="Register a dataset definition")
def add_dataset(
    body: dict[str, Any], session: SessionDep, settings: SettingsDep, principal: V1PrincipalDep
) -> dict[str, Any]:
    _scoped(principal)
    ref = body.get("organization")
    org = _owner(session, principal, ref if isinstance(ref, str) else None)
    if org is None:
        raise InvalidInputError("name the owning organization", {"organization": ["required"]})
    _allowed(principal, org.id)
    _check_open(body, session, settings, principal)
    ds = instances.add_dataset(session, settings, body, organization=org.name, origin="api")
    audit.record(session, "dataset.add", principal, dataset_id=ds.id, details={"key": ds.key})
    return {"id": ds.id, "key": ds.key, "name": ds.name, "organization": org.name, "spec": ds.spec}


def _check_open(
    body: dict[str, Any], session: SessionDep, settings: SettingsDep, principal: Principal
) -> None:
    """Refuse an open dataset whose contract has direct or sensitive personal data (audited)."""
    key, ref = body.get("id"), body.get("contract")
    if body.get("sharing") != "open" or not isinstance(ref, str):
        return
    try:
        refusal = open_refusal_for(ref, settings.schemas_dir, key if isinstance(key, str) else None)
    except ContractError:
        return  # add_dataset names the contract that cannot be loaded
    if refusal:
        audit.record(
            session, "dataset.add", principal, outcome="denied", reason=refusal, details={"key": key}
        )
        session.commit()
        raise InvalidInputError(refusal, {"sharing": [refusal]})
