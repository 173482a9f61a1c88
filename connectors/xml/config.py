"""Config model of the ``xml`` connector."""

from __future__ import annotations

from pydantic import Field, field_validator

from hub.ingest.connector import ConnectorConfig, WriteMode


class XmlConfig(ConnectorConfig):
    path: str = Field(description="The XML file; relative paths start at the hub's data directory.")
    record: str = Field(
        description="Record element as written in the file (``record``, ``hs:KhaiSinh``), or a path to it "
        "(``export/records/record``): its last step names the records."
    )
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Column -> where its value is in a record: ``child``, ``child/grandchild``, ``@attr``, "
        "``child/@attr``. Default: the first record's attributes and child elements.",
    )
    namespaces: dict[str, str] = Field(default_factory=dict, description="Prefixes used in ``fields``.")
    xsd: str | None = Field(default=None, description="XML Schema that each record element must satisfy.")
    stream: str | None = Field(
        default=None, description="Stream name. Default: the file name without suffix."
    )
    primary_key: list[str] = Field(default_factory=list)
    cursor_field: str | None = None
    write_mode: WriteMode = WriteMode.APPEND
    block_bytes: int = Field(
        default=4 << 20, gt=0, description="Bytes parsed at once (memory stays constant)."
    )

    @field_validator("record")
    @classmethod
    def _record(cls, v: str) -> str:
        tag = v.rstrip("/").rsplit("/", 1)[-1]
        if not tag or any(c in tag for c in "<>@[]() \t\n"):
            raise ValueError("must name an element, e.g. record or hs:KhaiSinh")
        return v

    @property
    def tag(self) -> str:
        return self.record.rstrip("/").rsplit("/", 1)[-1]
