"""The rows of the emulated ``pg_catalog`` and ``information_schema``: what one principal may read.

``readable(hub, session, principal)`` lists the relations: the datasets the principal may read
(``hub.auth.access.readable_clause``; shared and internal ones only with the ``warehouse:query``
scope, which their reads need) that have a table, named by their key (``civil_status.births`` is
table ``births`` of schema ``civil_status``), with the Arrow schema of their current snapshot
(``Hub.datastore.table_info``), and the open-data releases (schema ``releases``). ``rows(...)`` turns
them into the rows of each catalogue table. No row of data is read: only schemas and counts.

Object ids are stable: a schema's or table's oid is derived from its name, so a tool that caches
them (DBeaver does) finds the same ones after a reconnection.
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.auth.access import readable_clause
from hub.auth.principal import Principal
from hub.catalog.models import Dataset, Organization
from hub.pgwire.encode import TEXT, _codec_parts
from hub.publish.models import Release
from hub.runtime import Hub
from hub.sql.door import RELEASES_SCHEMA, release_source

PG_CATALOG_OID, PUBLIC_OID, INFO_OID, HUB_ROLE_OID = 11, 2200, 13_000, 10
SCOPE = "warehouse:query"


@dataclass(frozen=True)
class Relation:
    """One table the principal may read."""

    schema: str
    name: str
    arrow: pa.Schema
    rows: int | None
    owner: str
    comment: str | None

    @property
    def oid(self) -> int:
        return stable_oid(f"table:{self.schema}.{self.name}")


def stable_oid(name: str) -> int:
    return 16_384 + zlib.crc32(name.encode()) % 2_000_000_000


def readable(hub: Hub, session: Session, principal: Principal) -> list[Relation]:
    """The relations ``principal`` may read now (see the module docstring)."""
    query = (
        select(Dataset, Organization.name)
        .outerjoin(Organization, Organization.id == Dataset.owner_org_id)
        .where(readable_clause(session, principal), Dataset.state == "active", Dataset.contract.is_not(None))
        .order_by(Dataset.key)
    )
    out: list[Relation] = []
    for ds, org in session.execute(query).all():
        if ds.sharing != "open" and not principal.has_scope(SCOPE) and principal.kind != "system":
            continue
        schema, _, name = ds.key.partition(".")
        info = hub.datastore.table_info(ds.key)
        if not name or info is None:
            continue
        comment = ds.title + (f" / {ds.title_en}" if ds.title_en else "")
        out.append(Relation(schema, name, info.schema, info.rows, org or "hub", comment))
    out.extend(_releases(hub, session))
    return out


def _releases(hub: Hub, session: Session) -> list[Relation]:
    found = session.execute(
        select(Release, Dataset.key, Organization.name)
        .join(Dataset, Release.dataset_id == Dataset.id)
        .outerjoin(Organization, Organization.id == Dataset.owner_org_id)
        .where(Release.state == "active", Dataset.state == "active")
        .order_by(Dataset.key, Release.name)
    ).all()
    counts = Counter(rel.name for rel, _, _ in found)
    out = []
    for rel, key, org in found:
        name = rel.name if counts[rel.name] == 1 else f"{key}/{rel.name}"
        source = release_source(session, hub.settings, name)
        if source is None:
            continue
        comment = rel.title + (f" / {rel.title_en}" if rel.title_en else "")
        out.append(Relation(RELEASES_SCHEMA, name, source.schema, None, org or "hub", comment))
    return out


def fingerprint(relations: list[Relation]) -> tuple[Any, ...]:
    return tuple((r.schema, r.name, r.rows, r.arrow.to_string()) for r in relations)


def _type_display(oid: int, typmod: int) -> str:
    names = {16: "boolean", 17: "bytea", 20: "bigint", 21: "smallint", 23: "integer", 25: "text",
             114: "json", 700: "real", 701: "double precision", 1082: "date",
             1083: "time without time zone", 1114: "timestamp without time zone",
             1184: "timestamp with time zone", 1186: "interval", 1700: "numeric"}  # fmt: skip
    if oid == 1700 and typmod > 4:
        return f"numeric({(typmod - 4) >> 16},{(typmod - 4) & 0xFFFF})"
    return names.get(oid, "text")


def rows(relations: list[Relation], user: str, database: str) -> dict[str, list[dict[str, Any]]]:
    """The rows of each filled catalogue table (``hubpg.<table>``, ``hubinfo.<view>``)."""
    owners = sorted({r.owner for r in relations} | {user})
    role = {name: stable_oid(f"role:{name}") for name in owners}
    role["hub"] = HUB_ROLE_OID
    schemas = sorted({r.schema for r in relations} | {"public"})
    nsp = {s: (PUBLIC_OID if s == "public" else stable_oid(f"schema:{s}")) for s in schemas}
    nsp |= {"pg_catalog": PG_CATALOG_OID, "information_schema": INFO_OID}
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in ("pg_namespace", "pg_class", "pg_attribute")}
    for name, oid in nsp.items():
        out["pg_namespace"].append({"oid": oid, "nspname": name, "nspowner": HUB_ROLE_OID})
    out["pg_roles"] = [
        {"oid": oid, "rolname": name, "rolsuper": False, "rolinherit": True, "rolcreaterole": False,
         "rolcreatedb": False, "rolcanlogin": name == user, "rolreplication": False, "rolconnlimit": -1,
         "rolbypassrls": False}
        for name, oid in role.items()
    ]  # fmt: skip
    out["pg_authid"] = out["pg_user"] = []
    out["pg_database"] = [
        {"oid": 16_384, "datname": database, "datdba": HUB_ROLE_OID, "encoding": 6, "datlocprovider": "c",
         "datistemplate": False, "datallowconn": True, "datconnlimit": -1, "datcollate": "C.UTF-8",
         "datctype": "C.UTF-8", "dattablespace": 1663}
    ]  # fmt: skip
    out["pg_am"] = [{"oid": 2, "amname": "heap", "amhandler": "heap_tableam_handler", "amtype": "t"}]
    out["pg_tablespace"] = [{"oid": 1663, "spcname": "pg_default", "spcowner": HUB_ROLE_OID}]
    out["pg_description"] = []
    out["pg_tables"] = []
    info_tables: list[dict[str, Any]] = []
    info_columns: list[dict[str, Any]] = []
    for r in relations:
        out["pg_class"].append(
            {"oid": r.oid, "relname": r.name, "relnamespace": nsp[r.schema], "reltype": 0, "reloftype": 0,
             "relowner": role[r.owner], "relam": 2, "relfilenode": r.oid, "reltablespace": 0,
             "relpages": 0, "reltuples": float(r.rows if r.rows is not None else -1), "relallvisible": 0,
             "reltoastrelid": 0, "relhasindex": False, "relisshared": False, "relpersistence": "p",
             "relkind": "r", "relnatts": len(r.arrow), "relchecks": 0, "relhasrules": False,
             "relhastriggers": False, "relhassubclass": False, "relrowsecurity": False,
             "relforcerowsecurity": False, "relispopulated": True, "relreplident": "d",
             "relispartition": False, "relrewrite": 0}
        )  # fmt: skip
        out["pg_tables"].append(
            {"schemaname": r.schema, "tablename": r.name, "tableowner": r.owner, "hasindexes": False,
             "hasrules": False, "hastriggers": False, "rowsecurity": False}
        )  # fmt: skip
        if r.comment:
            out["pg_description"].append(
                {"objoid": r.oid, "classoid": 1259, "objsubid": 0, "description": r.comment}
            )
        info_tables.append(
            {"table_catalog": database, "table_schema": r.schema, "table_name": r.name,
             "table_type": "BASE TABLE", "is_insertable_into": "NO", "is_typed": "NO"}
        )  # fmt: skip
        for i, f in enumerate(r.arrow, start=1):
            oid, size, typmod, _, _ = _codec_parts(f.type)
            out["pg_attribute"].append(
                {"attrelid": r.oid, "attname": f.name, "atttypid": oid, "attstattarget": -1,
                 "attlen": size, "attnum": i, "attndims": 0, "attcacheoff": -1, "atttypmod": typmod,
                 "attbyval": size in (1, 2, 4, 8), "attalign": "d" if size == 8 else "i",
                 "attstorage": "x" if size < 0 else "p", "attcompression": "", "attnotnull": not f.nullable,
                 "atthasdef": False, "atthasmissing": False,
                 "attidentity": "", "attgenerated": "", "attisdropped": False, "attislocal": True,
                 "attinhcount": 0, "attcollation": 100 if oid == TEXT else 0}
            )  # fmt: skip
            display = _type_display(oid, typmod)
            info_columns.append(
                {"table_catalog": database, "table_schema": r.schema, "table_name": r.name,
                 "column_name": f.name, "ordinal_position": i, "is_nullable": "YES" if f.nullable else "NO",
                 "data_type": display.split("(")[0] if oid == 1700 else display,
                 "numeric_precision": (typmod - 4) >> 16 if oid == 1700 and typmod > 4 else None,
                 "numeric_scale": (typmod - 4) & 0xFFFF if oid == 1700 and typmod > 4 else None,
                 "udt_catalog": database, "udt_schema": "pg_catalog", "udt_name": _udt_name(oid),
                 "dtd_identifier": str(i), "is_self_referencing": "NO", "is_identity": "NO",
                 "is_generated": "NEVER", "is_updatable": "NO"}
            )  # fmt: skip
    out["information_schema.schemata"] = [
        {"catalog_name": database, "schema_name": s, "schema_owner": "hub"} for s in sorted(nsp)
    ]
    out["information_schema.tables"] = info_tables
    out["information_schema.columns"] = info_columns
    return out


def _udt_name(oid: int) -> str:
    return {16: "bool", 17: "bytea", 20: "int8", 21: "int2", 23: "int4", 25: "text", 114: "json",
            700: "float4", 701: "float8", 1082: "date", 1083: "time", 1114: "timestamp", 1184: "timestamptz",
            1186: "interval", 1700: "numeric"}.get(oid, "text")  # fmt: skip
