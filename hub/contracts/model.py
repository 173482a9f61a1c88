"""What a loaded contract is: the dataset's fields, their Arrow types and annotations."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

Personal = Literal["direct", "quasi", "sensitive"]
PERSONAL_CLASSES: tuple[str, ...] = ("direct", "quasi", "sensitive")

# JSON kinds a field may hold (besides null): one Arrow type each.
KIND_ARROW: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "object": pa.string(),  # JSON text
    "array": pa.string(),  # JSON text
}
FORMAT_ARROW: dict[str, pa.DataType] = {
    "date": pa.date32(),
    "date-time": pa.timestamp("us", tz="UTC"),
}


@dataclass(frozen=True)
class FieldInfo:
    """One property of the contract, i.e. one column of the dataset."""

    name: str
    arrow_type: pa.DataType
    required: bool
    nullable: bool
    json_type: str  # "string" | "integer" | "number" | "boolean" | "object" | "array"
    format: str | None = None
    label_vi: str | None = None
    label_en: str | None = None
    description: str | None = None
    personal: Personal | None = None
    unit: str | None = None
    check: str | None = None
    date_field: str | None = None  # x-date-field: the field that dates the record (for vn-ward-code)
    birth_date_field: str | None = None  # x-birth-date-field (for vn-personal-id)
    coarse: bool = False
    """x-coarse: a coarse quasi-identifier (sex, an administrative unit) that a release may show raw; the
    release is then checked for groups smaller than k."""
    geometry: str | None = None  # x-geometry: "wkt", a geometry a release must generalize (hub_centroid)
    pointer: str = ""  # JSON pointer of the property in the contract file

    def arrow_field(self) -> pa.Field:
        return pa.field(self.name, self.arrow_type, nullable=self.nullable)


@dataclass
class Contract:
    """A loaded, checked contract (``load_contract``)."""

    ref: str
    path: Path
    schema: dict[str, Any]
    fields: list[FieldInfo]
    primary_key: tuple[str, ...]
    title: str
    label: dict[str, str]
    base_uri: str = ""
    arrow_schema: pa.Schema = field(init=False)
    # Filled by the loader for the validator: the referencing registry of the contract's files, the
    # per-field plans (hub.contracts.compile.FieldPlan), the root keywords left to jsonschema, and whether
    # properties beyond the declared ones are allowed.
    registry: Any = None
    plans: dict[str, Any] = field(default_factory=dict)
    residual: tuple[str, ...] = ()
    additional_allowed: bool = True

    def __post_init__(self) -> None:
        self.arrow_schema = pa.schema([f.arrow_field() for f in self.fields])

    def field(self, name: str) -> FieldInfo:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def dataset_key(self) -> str:
        """``civil_status/births.v1`` -> ``civil_status.births``."""
        domain, _, rest = self.ref.partition("/")
        return f"{domain}.{rest.split('.v')[0]}"
