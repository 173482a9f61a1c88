"""Dataset and organization definitions: the schema of ``catalog/<agency>/*.yaml``.

An agency folder holds ``organization.yaml`` (the agency itself) and one YAML file per dataset::

    # catalog/so-tu-phap/births.yaml
    id: civil_status.births              # dataset key: <domain>.<dataset>, snake_case
    title: {vi: Đăng ký khai sinh, en: Birth registrations}
    description: {vi: ..., en: ...}
    sharing: shared                      # open | shared | internal (mở / dùng chung / dùng riêng)
    contract: civil_status/births.v1     # schemas/civil_status/births.v1.schema.json
    source:
      connector: files                   # a name from `hub connectors list`
      stream: births                     # optional when the connector has one stream
      config: {path: data/births.csv, format: csv}
    write_mode: append                   # append | replace | upsert
    primary_key: [registration_number]   # default: the contract's x-primary-key
    cursor_field: updated_at             # incremental loads; default: none (full read)
    invalid_threshold: 0.05              # default: HUB_INVALID_THRESHOLD
    schedule: "0 2 * * *"                # cron, for `hub worker`
    license: cc-by-4.0
    tags: [hộ tịch, khai sinh]
    groups: [tu-phap]
    k_anonymity: 5                       # smallest group an open release may show
    releases: []                         # open-data releases (see docs/publish.md)

Unknown keys are refused, so a typo is an error naming the file and the key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DATASET_KEY = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
ORG_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{1,99}$")

WriteModeName = Literal["append", "replace", "upsert"]
SharingClass = Literal["open", "shared", "internal"]


class Text(BaseModel):
    """A text in Vietnamese with its English translation."""

    model_config = ConfigDict(extra="forbid")
    vi: str
    en: str | None = None


class SourceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connector: str = Field(description="Connector name, or the name of a registered connector instance.")
    stream: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)


class OrganizationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    title: Text
    description: Text | None = None
    email: str | None = None
    image_url: str | None = None
    extras: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not ORG_NAME.match(v):
            raise ValueError("must be 2-100 characters of a-z, 0-9, - and _")
        return v


class DatasetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Dataset key, <domain>.<dataset>.")
    organization: str | None = Field(default=None, description="Owner; default: the folder's organization.")
    title: Text
    description: Text | None = None
    sharing: SharingClass = "internal"
    contract: str = Field(description="Contract reference <domain>/<dataset>.v<MAJOR>.")
    source: SourceSpec | None = None
    write_mode: WriteModeName = "append"
    primary_key: list[str] | None = None
    cursor_field: str | None = None
    invalid_threshold: float | None = Field(default=None, ge=0, le=1)
    schedule: str | None = None
    license: str = "cc-by-4.0"
    tags: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    k_anonymity: int = Field(default=5, ge=1)
    spatial: str | None = Field(default=None, description="Province or ward code(s) covered.")
    frequency: str | None = Field(default=None, description="Update frequency (DCAT accrual periodicity).")
    contact: dict[str, str] | None = None
    releases: list[dict[str, Any]] = Field(default_factory=list)
    extras: dict[str, str] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _key(cls, v: str) -> str:
        if not DATASET_KEY.match(v):
            raise ValueError("must look like <domain>.<dataset> in snake_case, e.g. civil_status.births")
        return v

    @property
    def ckan_name(self) -> str:
        """The CKAN slug of the dataset: ``civil_status.births`` -> ``civil_status-births``."""
        return ckan_name(self.id)

    @property
    def namespace(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def table(self) -> str:
        return self.id.split(".", 1)[1]


def ckan_name(key: str) -> str:
    return key.replace(".", "-")


class LoadedDataset(BaseModel):
    """A dataset spec together with where it came from."""

    spec: DatasetSpec
    organization: str
    file: Path
