"""CKAN write actions for authorized members of an organization: packages, resources, organizations.

Catalog datasets (defined in ``catalog/*.yaml``) can be edited too, but their sharing class is the
catalog file's: a change of ``private`` on them is refused, and the next catalog sync restores the
fields the YAML file defines.

The privacy guard (``hub.catalog.privacy``): a package whose contract (its own, or the ``contract`` field
or extra it declares) has direct or sensitive personal data cannot become public (``private: false``, a
``sharing`` field or extra of ``open``); a file uploaded to a public package (or held by a package that
becomes public) is scanned for personal ids and known names first (``hub.catalog.privacy_scan``). Both
refusals are 409 validation errors naming the fields, rows and columns, and are written to the audit log;
so is every upload stored (``resource.upload``, with whether it was scanned).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy import func, select

from hub.api.ckan_registry import (
    ActionContext,
    action,
    as_bool,
    deny,
    find_dataset,
    find_organization,
    get_or_bust,
    require_write,
)
from hub.api.uploads import store_upload, upload_path
from hub.auth import audit
from hub.catalog.ckan import (
    clean_format,
    ensure_group,
    guess_mimetype,
    munge_filename,
    organization_dict,
    set_groups,
    set_tags,
    touch,
)
from hub.catalog.ckan_models import Group, PackageInfo, Resource, Upload
from hub.catalog.models import Dataset, Organization
from hub.catalog.privacy import open_refusal_for
from hub.catalog.privacy_scan import scan_file
from hub.db import utcnow
from hub.errors import ContractError, InvalidInputError, NotFoundError

NAME = re.compile(r"^[a-z0-9_-]{2,100}$")
TAG = re.compile(r"^[\w \-.]{1,100}$", re.UNICODE)
CORE = {
    "id",
    "name",
    "title",
    "notes",
    "url",
    "version",
    "author",
    "author_email",
    "maintainer",
    "maintainer_email",
    "license_id",
    "owner_org",
    "private",
    "state",
    "type",
    "tags",
    "tag_string",
    "extras",
    "groups",
    "resources",
    "license_title",
    "license_url",
    "isopen",
    "organization",
    "metadata_created",
    "metadata_modified",
    "creator_user_id",
    "num_resources",
    "num_tags",
    "relationships_as_subject",
    "relationships_as_object",
}
INFO_FIELDS = ("url", "version", "author", "author_email", "maintainer", "maintainer_email")
RESOURCE_FIELDS = (
    "name",
    "description",
    "format",
    "mimetype",
    "mimetype_inner",
    "size",
    "hash",
    "resource_type",
    "url",
)
RESOURCE_IGNORED = {
    "id",
    "package_id",
    "upload",
    "position",
    "state",
    "url_type",
    "created",
    "last_modified",
    "metadata_modified",
    "datastore_active",
    "cache_url",
    "cache_last_updated",
    "clear_upload",
    "hub_snapshot_id",
}


def _check_name(value: Any, key: str = "name") -> str:
    name = str(value or "")
    if not NAME.match(name) or name in ("new", "edit", "search"):
        raise InvalidInputError(
            "invalid name",
            {
                key: [
                    "Must be purely lowercase alphanumeric (ascii) characters and these symbols: -_"
                    if name
                    else "Missing value"
                ]
            },
        )
    return name


def _text(value: Any) -> str | None:
    """A text field as CKAN's ``unicode_safe`` takes it: any JSON value as its text; empty is none."""
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _items(data: dict[str, Any], key: str) -> list[Any]:
    """A list field (``extras``, ``groups``, ``resources``): missing or empty is none; else a list."""
    value = data.get(key)
    if not value:
        return []
    if not isinstance(value, list):
        raise InvalidInputError(key, {key: ["Not a list"]})
    return value


def _org_for(ctx: ActionContext, value: Any) -> Organization:
    if not value:
        raise InvalidInputError("owner_org", {"owner_org": ["An organization must be provided"]})
    org = ctx.session.scalar(
        select(Organization).where((Organization.id == str(value)) | (Organization.name == str(value)))
    )
    if org is None or org.state != "active":
        raise InvalidInputError("owner_org", {"owner_org": ["Organization does not exist"]})
    return org


def _tags(data: dict[str, Any]) -> list[str]:
    names: list[str] = []
    if isinstance(data.get("tags"), list):
        for t in data["tags"]:
            names.append(str(t.get("name") if isinstance(t, dict) else t))
    elif data.get("tag_string"):
        names = [t.strip() for t in str(data["tag_string"]).split(",")]
    bad = [n for n in names if n and not TAG.match(n)]
    if bad or any(len(n.strip()) == 1 for n in names if n):
        raise InvalidInputError(
            "tags", {"tags": [f'Tag "{(bad or names)[0]}" must be alphanumeric characters or symbols: -_.']}
        )
    return [n for n in names if n.strip()]


def _extras(data: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in _items(data, "extras"):
        if not isinstance(item, dict) or "key" not in item:
            raise InvalidInputError("extras", {"extras": ["Extras must be a list of {key, value}"]})
        key = str(item["key"])
        if key in CORE:
            message = f"There is a schema field with the same name: {key}"
            raise InvalidInputError("extras", {"extras": [message]})
        if not item.get("deleted"):
            out[key] = "" if item.get("value") is None else str(item.get("value"))
    return out


def _groups(ctx: ActionContext, data: dict[str, Any]) -> list[Group]:
    out = []
    for item in _items(data, "groups"):
        ref = str(item.get("id") or item.get("name") if isinstance(item, dict) else item)
        g = ctx.session.scalar(select(Group).where((Group.id == ref) | (Group.name == ref)))
        if g is None:
            raise InvalidInputError("groups", {"groups": [f"Group {ref} does not exist"]})
        out.append(g)
    return out


def _sharing(data: dict[str, Any], current: str | None) -> str:
    if data.get("sharing") in ("open", "shared", "internal"):
        return str(data["sharing"])
    if "private" not in data and current is not None:
        return current
    private = as_bool(data, "private", False)
    if not private:
        return "open"
    return current if current in ("shared", "internal") else "internal"


def _refuse(
    ctx: ActionContext,
    action_name: str,
    message: str,
    errors: dict[str, list[str]],
    *,
    dataset_id: str | None,
    details: dict[str, Any],
) -> NoReturn:
    """Undo the request's changes, write the refusal to the audit log (committed: the request fails) and
    raise CKAN's 409 validation error."""
    ctx.session.rollback()
    audit.record(
        ctx.session,
        action_name,
        ctx.principal,
        outcome="denied",
        dataset_id=dataset_id,
        reason=message,
        details=details,
    )
    ctx.session.commit()
    raise InvalidInputError(message, errors)


def _check_public(
    ctx: ActionContext,
    ds: Dataset,
    data: dict[str, Any],
    sharing: str,
    extras: dict[str, str],
    *,
    create: bool,
) -> None:
    """Refuse a package that would be public (``private: false``, the default of a new package, or a
    ``sharing`` field or extra of ``open``) when its contract has direct or sensitive personal data."""
    if sharing != "open" and extras.get("sharing") != "open":
        return
    ref = ds.contract or data.get("contract") or extras.get("contract")
    if not isinstance(ref, str) or not ref:
        return
    try:
        refusal = open_refusal_for(ref, ctx.settings.schemas_dir, ds.key if ds.contract else ds.name)
    except ContractError:
        return  # not a contract of this hub: it describes no data the hub holds
    if refusal:
        key = "sharing" if data.get("sharing") == "open" else "extras" if sharing != "open" else "private"
        _refuse(
            ctx,
            "dataset.create" if create else "dataset.update",
            refusal,
            {key: [refusal]},
            dataset_id=None if create else ds.id,
            details={"package": ds.name, "contract": ref},
        )


def _apply(ctx: ActionContext, ds: Dataset, data: dict[str, Any], *, create: bool) -> bool:
    """Write the package fields of ``data`` into ``ds`` (replace semantics); True when anything changed."""
    org = _org_for(ctx, data.get("owner_org"))
    if org.id != ds.owner_org_id:
        require_write(ctx, org.id, "dataset.update", f"dataset of {org.name}")
    name = _check_name(data.get("name") or ds.name)
    if name != ds.name:
        taken = ctx.session.scalar(select(Dataset.id).where(Dataset.name == name, Dataset.id != ds.id))
        if taken:
            raise InvalidInputError("name", {"name": ["That URL is already in use."]})
    sharing = _sharing(data, None if create else ds.sharing)
    tags, extras = _tags(data), _extras(data)
    _check_public(ctx, ds, data, sharing, extras, create=create)
    if ds.source_file and not create and sharing != ds.sharing:
        raise InvalidInputError(
            "private", {"private": ["The sharing class of a catalog dataset is set in its catalog file"]}
        )
    if sharing == "open" and not create and ds.sharing != "open":
        _scan_held_uploads(ctx, ds)
    groups = _groups(ctx, data)
    if len(str(data.get("version") or "")) > 100:
        raise InvalidInputError("version", {"version": ["Version must be at most 100 characters long"]})
    ds.name, ds.owner_org_id, ds.sharing = name, org.id, sharing
    ds.title = str(data.get("title") or name)
    ds.notes = _text(data.get("notes"))
    ds.license_id = _text(data.get("license_id"))
    if data.get("state") in ("active", "draft", "deleted"):
        ds.state = str(data["state"])
    changed = ctx.session.is_modified(ds)
    info = ctx.session.get(PackageInfo, ds.id)
    if info is None:
        info = PackageInfo(dataset_id=ds.id, extras={}, fields={}, creator_user_id=ctx.principal.subject)
        ctx.session.add(info)
        changed = True
    for key in INFO_FIELDS:
        value = data.get(key) or None
        if getattr(info, key) != value:
            setattr(info, key, value if value is None else str(value))
            changed = True
    fields = {k: v for k, v in data.items() if k not in CORE and k != "sharing" and not k.startswith("__")}
    if (info.extras or {}) != extras or (info.fields or {}) != fields:
        info.extras, info.fields, changed = extras, fields, True
    changed = set_tags(ctx.session, ds, tags) or changed
    changed = set_groups(ctx.session, ds, groups) or changed
    if "resources" in data:
        changed = _replace_resources(ctx, ds, _items(data, "resources")) or changed
    return changed


def _replace_resources(ctx: ActionContext, ds: Dataset, items: list[Any]) -> bool:
    existing = {r.id: r for r in ctx.session.scalars(select(Resource).where(Resource.dataset_id == ds.id))}
    keep: set[str] = set()
    changed = False
    for pos, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidInputError("resources", {"resources": ["Resources must be a list of objects"]})
        r = existing.get(str(item.get("id") or ""))
        if r is None:
            _new_resource(ctx, ds, item, position=pos)
            changed = True
        else:
            keep.add(r.id)
            changed = _update_resource(ctx, r, item, patch=False) or changed
            if r.position != pos:
                r.position, changed = pos, True
    for r in existing.values():
        if r.id not in keep and r.state == "active" and r.kind in ("link", "upload"):
            r.state, changed = "deleted", True
    return changed


def _new_resource(
    ctx: ActionContext, ds: Dataset, data: dict[str, Any], *, position: int | None = None
) -> Resource:
    if position is None:
        top = ctx.session.scalar(select(func.max(Resource.position)).where(Resource.dataset_id == ds.id))
        position = (top if top is not None else -1) + 1
    rid = str(data.get("id") or "") or None
    if rid is not None:
        try:
            rid = str(uuid.UUID(rid))
        except ValueError as exc:
            raise InvalidInputError("id", {"id": ["Invalid id: it must be a UUID"]}) from exc
        if ctx.session.get(Resource, rid) is not None:
            raise InvalidInputError("id", {"id": ["Resource id already exists"]})
    r = Resource(dataset_id=ds.id, kind="link", position=position, url="", extras={})
    if rid:
        r.id = rid
    ctx.session.add(r)
    _update_resource(ctx, r, data, patch=False)
    return r


def _update_resource(ctx: ActionContext, r: Resource, data: dict[str, Any], *, patch: bool) -> bool:
    before = _resource_state(r)
    managed = r.kind in ("datastore", "release")
    for key in RESOURCE_FIELDS:
        if managed and key not in ("name", "description"):
            continue
        if patch and key not in data:
            continue
        value = data.get(key)
        if key == "size":
            try:
                value = int(value) if value not in (None, "") else None
            except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: Infinity
                raise InvalidInputError("size", {"size": ["Invalid integer"]}) from exc
            if value is not None and not -(2**63) <= value < 2**63:
                raise InvalidInputError("size", {"size": ["Invalid integer"]})
        elif key == "url":
            value = "" if value is None else str(value)
            if r.upload_id and f"/resource/{r.id}/download/" in value:
                continue
        elif value is not None:
            value = str(value)
        if key == "format":
            url = data.get("url") if "url" in data else r.url
            value = clean_format(None if value is None else str(value), url) or None
        setattr(r, key, value if value != "" or key == "url" else None)
    upload = data.get("upload")
    if upload is not None and hasattr(upload, "read") and not managed:
        filename = munge_filename(getattr(upload, "filename", None) or "upload")
        ds = ctx.session.get(Dataset, r.dataset_id)
        check = _upload_scan(ctx, ds, r.id, filename) if ds is not None and ds.sharing == "open" else None
        stored = store_upload(
            ctx.settings, ctx.session, upload, filename, created_by=ctx.principal.subject, check=check
        )
        audit.record(
            ctx.session,
            "resource.upload",
            ctx.principal,
            dataset_id=r.dataset_id,
            details={
                "file": filename,
                "sha256": stored.sha256,
                "size": stored.size,
                "scanned": check is not None,
            },
        )
        r.kind, r.url_type, r.url, r.upload_id = "upload", "upload", filename, stored.id
        r.size, r.hash = stored.size, stored.sha256
        r.mimetype = r.mimetype or stored.mimetype or guess_mimetype(filename, r.format)
        r.format = r.format or clean_format(None, filename) or None
        r.last_modified = utcnow()
    elif not managed and not r.upload_id and (data.get("url") or not patch):
        r.kind, r.url_type = "link", (str(data["url_type"]) if data.get("url_type") else None)
    elif not managed and r.upload_id and "url" in data and "://" in str(data.get("url") or ""):
        r.kind, r.url_type, r.upload_id = "link", None, None
    if not r.format and r.url and not managed:
        r.format = clean_format(None, r.url) or None
    extras = dict(r.extras or {}) if patch else {}
    for key, value in data.items():
        if key in RESOURCE_FIELDS or key in RESOURCE_IGNORED or hasattr(value, "read"):
            continue
        extras[key] = value
    r.extras = extras
    return _resource_state(r) != before


def _upload_scan(ctx: ActionContext, ds: Dataset, rid: str, filename: str) -> Callable[[Path], None]:
    """The check of a file uploaded to the open dataset ``ds``: refused when it holds personal data."""
    dataset_id, name = ds.id, ds.name

    def check(path: Path) -> None:
        hits = scan_file(path, filename, ctx.hub.known_names.get(ctx.session))
        if hits:
            _refuse_hits(ctx, hits, dataset_id=dataset_id, package=name, resource_id=rid, filename=filename)

    return check


def _refuse_hits(
    ctx: ActionContext, hits: list[Any], *, dataset_id: str, package: str, resource_id: str, filename: str
) -> NoReturn:
    more = f" (and {len(hits) - 5} more)" if len(hits) > 5 else ""
    message = (
        f"{filename} holds personal data, and {package} is open: "
        + "; ".join(h.describe() for h in hits[:5])
        + more
        + ". Remove it, or publish the data through a release (de-identified)."
    )
    _refuse(
        ctx,
        "resource.upload",
        message,
        {"upload": [message]},
        dataset_id=dataset_id,
        details={
            "package": package,
            "resource_id": resource_id,
            "file": filename,
            "hits": [h.as_dict() for h in hits],
        },
    )


def _scan_held_uploads(ctx: ActionContext, ds: Dataset) -> None:
    """A package that becomes public: the files uploaded to it while it was private are scanned."""
    held = ctx.session.execute(
        select(Resource.id, Upload)
        .join(Upload, Upload.id == Resource.upload_id)
        .where(Resource.dataset_id == ds.id, Resource.state == "active")
    ).all()
    names = ctx.hub.known_names.get(ctx.session) if held else None
    for rid, up in held:
        assert names is not None
        hits = scan_file(upload_path(ctx.settings, up), up.filename, names)
        if hits:
            _refuse_hits(ctx, hits, dataset_id=ds.id, package=ds.name, resource_id=rid, filename=up.filename)


def _resource_state(r: Resource) -> tuple[Any, ...]:
    return (
        *(getattr(r, k) for k in RESOURCE_FIELDS),
        r.kind,
        r.url_type,
        r.upload_id,
        dict(r.extras or {}),
        r.state,
    )


def _result_package(ctx: ActionContext, ds: Dataset, changed: bool) -> dict[str, Any]:
    ctx.session.flush()
    if changed:
        touch(ds)
        ctx.envelope["changed_entities"] = {"packages": [ds.id]}
    ctx.session.flush()
    return ctx.package(ds)


@action("package_create", write=True)
def package_create(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Create a dataset (``name``, ``owner_org``; tags, extras, groups, resources optional)."""
    _check_name(data.get("name"))
    org = _org_for(ctx, data.get("owner_org"))
    require_write(ctx, org.id, "dataset.create", f"create a dataset in {org.name}")
    if ctx.session.scalar(select(Dataset.id).where(Dataset.name == str(data["name"]))):
        raise InvalidInputError("name", {"name": ["That URL is already in use."]})
    ds_id = str(uuid.uuid4())
    if data.get("id"):
        try:
            ds_id = str(uuid.UUID(str(data["id"])))
        except ValueError as exc:
            raise InvalidInputError("id", {"id": ["Invalid id: it must be a UUID"]}) from exc
        if not ctx.principal.sysadmin:
            deny(ctx, "dataset.create", "Only a sysadmin may choose a dataset id")
        if ctx.session.get(Dataset, ds_id) is not None:
            raise InvalidInputError("id", {"id": ["Dataset id already exists"]})
    ds = Dataset(
        id=ds_id,
        key=f"ckan.d{uuid.UUID(ds_id).hex}",
        name=str(data["name"]),
        title=str(data["name"]),
        owner_org_id=org.id,
        sharing="open",
        spec={},
        state="active",
    )
    ctx.session.add(ds)
    ctx.session.flush()
    _apply(ctx, ds, data, create=True)
    return _result_package(ctx, ds, True)


def _writable(ctx: ActionContext, ref: str, what: str) -> Dataset:
    ds = find_dataset(ctx, ref)
    require_write(ctx, ds.owner_org_id, what, f"package {ds.name}")
    return ds


@action("package_update", write=True)
def package_update(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Replace a dataset's fields (a missing ``resources`` key keeps the resources, as in CKAN 2.12)."""
    ds = _writable(ctx, str(get_or_bust(data, "id", "name")), "dataset.update")
    data = {**data, "owner_org": data.get("owner_org") or ds.owner_org_id}
    return _result_package(ctx, ds, _apply(ctx, ds, data, create=False))


@action("package_patch", write=True)
def package_patch(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Overlay the given top-level keys on the dataset (lists are replaced whole)."""
    ds = _writable(ctx, str(get_or_bust(data, "id", "name")), "dataset.update")
    current = ctx.package(ds)
    merged = {**current, **{k: v for k, v in data.items() if k != "id"}}
    merged["id"] = ds.id
    return _result_package(ctx, ds, _apply(ctx, ds, merged, create=False))


@action("package_delete", write=True)
def package_delete(ctx: ActionContext, data: dict[str, Any]) -> None:
    """Soft-delete a dataset: it leaves lists and search; show gives 404 (except to sysadmins)."""
    ds = _writable(ctx, str(get_or_bust(data, "id")), "dataset.delete")
    ds.state = "deleted"
    touch(ds)
    return None


def _resource(ctx: ActionContext, rid: str) -> tuple[Resource, Dataset]:
    r = ctx.session.get(Resource, rid)
    if r is None or r.state != "active":
        raise NotFoundError("Not found: Resource was not found.")
    ds = ctx.session.get(Dataset, r.dataset_id)
    if ds is None or ds.state == "deleted":
        raise NotFoundError("Not found: Resource was not found.")
    require_write(ctx, ds.owner_org_id, "resource.update", f"package {ds.name}")
    return r, ds


def _resource_result(ctx: ActionContext, ds: Dataset, rid: str, changed: bool) -> dict[str, Any]:
    pkg = _result_package(ctx, ds, changed)
    return next(r for r in pkg["resources"] if r["id"] == rid)


@action("resource_create", write=True)
def resource_create(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Add a resource: a URL, or a file uploaded as the multipart part ``upload``."""
    ds = find_dataset(ctx, str(get_or_bust(data, "package_id")))
    require_write(ctx, ds.owner_org_id, "resource.create", f"package {ds.name}")
    r = _new_resource(ctx, ds, data)
    ctx.session.flush()
    return _resource_result(ctx, ds, r.id, True)


@action("resource_update", write=True)
def resource_update(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Replace a resource (fields left out are cleared); ``upload`` replaces its file."""
    r, ds = _resource(ctx, str(get_or_bust(data, "id")))
    changed = _update_resource(ctx, r, data, patch=False)
    return _resource_result(ctx, ds, r.id, changed)


@action("resource_patch", write=True)
def resource_patch(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Overlay the given keys on a resource."""
    r, ds = _resource(ctx, str(get_or_bust(data, "id")))
    changed = _update_resource(ctx, r, data, patch=True)
    return _resource_result(ctx, ds, r.id, changed)


@action("resource_delete", write=True)
def resource_delete(ctx: ActionContext, data: dict[str, Any]) -> None:
    """Delete a resource (the DataStore resource of a warehouse table cannot be deleted)."""
    r, ds = _resource(ctx, str(get_or_bust(data, "id")))
    if r.kind == "datastore":
        raise InvalidInputError(
            "resource", {"id": ["The DataStore resource of a warehouse table cannot be deleted"]}
        )
    r.state = "deleted"
    touch(ds)
    return None


def _org_fields(ctx: ActionContext, org: Organization, data: dict[str, Any]) -> None:
    org.title = str(data.get("title") or org.name)
    org.description = _text(data.get("description"))
    org.image_url = _text(data.get("image_url"))
    extras: dict[str, str] = {}
    for item in _items(data, "extras"):
        if isinstance(item, dict) and "key" in item and not item.get("deleted"):
            extras[str(item["key"])] = str(item.get("value") or "")
    org.extras = extras
    if data.get("state") in ("active", "deleted"):
        org.state = str(data["state"])


@action("organization_create", write=True)
def organization_create(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Create an organization (sysadmins)."""
    name = _check_name(data.get("name"))
    if not ctx.principal.sysadmin:
        deny(ctx, "admin.organization.create", f"User {ctx.user_name} not authorized to create organizations")
    if ctx.session.scalar(select(Organization.id).where(Organization.name == name)):
        raise InvalidInputError("name", {"name": ["Group name already exists in database"]})
    org = Organization(name=name, title=name, extras={})
    if data.get("id"):
        try:
            org.id = str(uuid.UUID(str(data["id"])))
        except ValueError as exc:
            raise InvalidInputError("id", {"id": ["Invalid id: it must be a UUID"]}) from exc
    _org_fields(ctx, org, data)
    ctx.session.add(org)
    ctx.session.flush()
    return organization_dict(org, package_count=0, full=True)


@action("organization_update", write=True)
def organization_update(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Replace an organization's title, description, image and extras (its admins, sysadmins)."""
    org = find_organization(ctx, str(get_or_bust(data, "id", "name")))
    p = ctx.principal
    if not (p.sysadmin or p.kind == "system" or p.org_roles.get(org.id) == "admin"):
        deny(
            ctx,
            "admin.organization.update",
            f"User {ctx.user_name} not authorized to edit organization {org.id}",
        )
    if data.get("name") and data["name"] != org.name:
        name = _check_name(data["name"])
        if ctx.session.scalar(select(Organization.id).where(Organization.name == name)):
            raise InvalidInputError("name", {"name": ["Group name already exists in database"]})
        org.name = name
    _org_fields(ctx, org, data)
    ctx.session.flush()
    count = ctx.session.scalar(
        select(func.count()).where(Dataset.owner_org_id == org.id, Dataset.state == "active")
    )
    return organization_dict(org, package_count=int(count or 0), full=True)


@action("group_create", write=True)
def group_create(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Create a group (sysadmins)."""
    from hub.catalog.ckan import group_dict

    name = _check_name(data.get("name"))
    if not ctx.principal.sysadmin:
        deny(ctx, "admin.group.create", f"User {ctx.user_name} not authorized to create groups")
    g = ensure_group(
        ctx.session, name, str(data.get("title") or name), description=_text(data.get("description"))
    )
    return group_dict(g, package_count=0, full=True)
