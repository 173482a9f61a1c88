"""The tables a person may query in the console, with their columns and bilingual labels.

What the console lists is what the SQL door lets the person read (``hub.sql.door``), so that the list
never names a table the query would refuse, nor hides one it would run:

- the datasets of ``hub.auth.access.readable_clause`` that have a table (open ones, those of the
  person's organizations, those granted to them; shared and internal ones only with the scope
  ``warehouse:query``), named by their key, with the Arrow schema of their current snapshot
  (``Hub.datastore.table_info``) and the labels of their contract's fields (``x-label``);
- the open-data releases, named ``releases."<id>"`` (``releases."<dataset key>/<id>"`` when two
  datasets have a release of that id), with the labels of their ``datapackage.json``.

No row is read: schemas, counts and labels only. Labels are kept a minute per contract or release
version (``hub.console.labels.Labels``, owned by the runtime's console).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.auth.access import readable_clause
from hub.auth.principal import Principal
from hub.catalog.models import Dataset
from hub.console.labels import Label, Labels
from hub.publish.models import Release
from hub.runtime import Hub
from hub.sql.door import RELEASES_SCHEMA, release_source

SCOPE = "warehouse:query"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    label_vi: str | None
    label_en: str | None


@dataclass(frozen=True)
class Table:
    """One table the person may read: the name to write in SQL, its titles, and its columns."""

    sql_name: str
    title_vi: str
    title_en: str | None
    kind: str  # "open", "shared", "internal" or "release"
    rows: int | None
    columns: tuple[Column, ...]


def _columns(schema: pa.Schema, labels: dict[str, Label]) -> tuple[Column, ...]:
    return tuple(Column(f.name, str(f.type), *labels.get(f.name, (None, None))) for f in schema)


def readable_tables(hub: Hub, session: Session, principal: Principal, labels: Labels) -> list[Table]:
    """The tables ``principal`` may query now (see the module docstring), datasets first."""
    out: list[Table] = []
    query = (
        select(Dataset)
        .where(readable_clause(session, principal), Dataset.state == "active", Dataset.contract.is_not(None))
        .order_by(Dataset.key)
    )
    for ds in session.scalars(query):
        if ds.sharing != "open" and not principal.has_scope(SCOPE) and principal.kind != "system":
            continue
        info = hub.datastore.table_info(ds.key)
        if info is None or "." not in ds.key:
            continue
        names = labels.contract(ds.contract or "", hub.settings.schemas_dir)
        out.append(Table(ds.key, ds.title, ds.title_en, ds.sharing, info.rows, _columns(info.schema, names)))
    found = session.execute(
        select(Release, Dataset.key)
        .join(Dataset, Release.dataset_id == Dataset.id)
        .where(Release.state == "active", Dataset.state == "active")
        .order_by(Dataset.key, Release.name)
    ).all()
    counts = Counter(rel.name for rel, _ in found)
    for rel, key in found:
        name = rel.name if counts[rel.name] == 1 else f"{key}/{rel.name}"
        source = release_source(session, hub.settings, name)
        if source is None:
            continue
        names = labels.release(source.files[0])
        out.append(
            Table(
                f'{RELEASES_SCHEMA}."{name}"',
                rel.title,
                rel.title_en,
                "release",
                None,
                _columns(source.schema, names),
            )
        )
    return out
