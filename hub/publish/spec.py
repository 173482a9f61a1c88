"""Release definitions: the ``releases:`` list of a dataset's catalog file.

::

    releases:
      - id: births-by-ward-month
        title: {vi: Số trẻ sinh theo xã/phường, tháng và giới tính, en: Births by ward, month and sex}
        sql: >-
          SELECT ward_code, date_trunc('month', registration_date) AS month, child_sex,
                 count(*) AS births FROM civil_status.births GROUP BY ALL
        frequency: monthly          # DCAT accrual periodicity (EU frequency vocabulary)
        k: 5                        # default: the dataset's k_anonymity
        person_count: births        # the output column that counts persons (aggregate releases)
        rebuild_on_ingest: true

A release without ``sql`` publishes the dataset itself (allowed only when no column is personal data).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hub.catalog.spec import DatasetSpec, Text
from hub.errors import CatalogError

RELEASE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,79}$")

Frequency = Literal["daily", "weekly", "monthly", "quarterly", "annual", "irregular"]

FREQUENCY_DAYS: dict[str, float | None] = {
    "daily": 1,
    "weekly": 7,
    "monthly": 31,
    "quarterly": 92,
    "annual": 366,
    "irregular": None,
}
"""Longest age a release may reach before it is rebuilt or flagged stale."""

FREQUENCY_URI = {
    "daily": "DAILY",
    "weekly": "WEEKLY",
    "monthly": "MONTHLY",
    "quarterly": "QUARTERLY",
    "annual": "ANNUAL",
    "irregular": "IRREG",
}
"""Codes of the EU frequency vocabulary (publications.europa.eu/resource/authority/frequency)."""


class ReleaseSpec(BaseModel):
    """One open-data release of a dataset."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Release id, unique within the dataset: a-z, 0-9 and -.")
    title: Text
    description: Text | None = None
    sql: str | None = Field(
        default=None, description="DuckDB SQL over warehouse datasets; none: the dataset."
    )
    frequency: Frequency = "monthly"
    k: int | None = Field(
        default=None, ge=1, description="Smallest group shown; default: dataset k_anonymity."
    )
    person_count: str | None = Field(
        default=None, description="Output column counting persons; cells below k are suppressed."
    )
    rebuild_on_ingest: bool = True
    geometry: str | None = Field(
        default=None, description="Output column holding WKT geometry (GeoJSON file)."
    )
    license: str = Field(default="cc-by-4.0", description="Licence of the open release.")
    rows_are_persons: bool = Field(
        default=True,
        description="Row-level releases: false when rows are not persons (parcels without owners); the "
        "re-identification check then does not apply. The column rules of the gate always do.",
    )

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not RELEASE_ID.match(v):
            raise ValueError("must be 2-80 characters of a-z, 0-9 and -")
        return v


def _pointer(loc: tuple[int | str, ...]) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in loc)


def parse_releases(spec: DatasetSpec, file: str | Path | None = None) -> list[ReleaseSpec]:
    """Validate the ``releases:`` dicts of ``spec``; errors name the file and JSON pointer."""
    out: list[ReleaseSpec] = []
    seen: set[str] = set()
    where = str(file) if file else None
    for i, raw in enumerate(spec.releases):
        try:
            rel = ReleaseSpec.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise CatalogError(
                err["msg"], file=where, pointer=_pointer(("releases", i, *err["loc"]))
            ) from exc
        if rel.id in seen:
            raise CatalogError(
                f"release id {rel.id!r} is used twice", file=where, pointer=f"/releases/{i}/id"
            )
        seen.add(rel.id)
        out.append(rel)
    return out


def release_k(release: ReleaseSpec, spec: DatasetSpec) -> int:
    return release.k or spec.k_anonymity


def release_as_dict(release: ReleaseSpec) -> dict[str, Any]:
    return release.model_dump(mode="json", exclude_none=True)
