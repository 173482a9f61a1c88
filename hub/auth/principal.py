"""Who is calling: the principal every API call and command acts as."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PrincipalKind = Literal["anonymous", "user", "client", "system"]

SCOPES = (
    "catalog:read",
    "catalog:write",
    "datastore:read",
    "warehouse:query",
    "connectors:manage",
    "grants:manage",
    "audit:read",
    "admin",
)


@dataclass(frozen=True)
class Principal:
    """The caller. ``org_roles`` maps organization id to role (admin, editor, member)."""

    kind: PrincipalKind = "anonymous"
    subject: str | None = None
    name: str | None = None
    client_id: str | None = None
    org_id: str | None = None
    org_roles: dict[str, str] = field(default_factory=dict)
    scopes: frozenset[str] = frozenset()
    sysadmin: bool = False
    token_id: str | None = None
    ip: str | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"

    def has_scope(self, scope: str) -> bool:
        return self.sysadmin or "admin" in self.scopes or scope in self.scopes

    def orgs(self) -> set[str]:
        out = set(self.org_roles)
        if self.org_id:
            out.add(self.org_id)
        return out


@dataclass(frozen=True)
class Decision:
    """Whether a principal may do something, why, and the grant that allows it (if one does)."""

    allowed: bool
    reason: str
    grant_id: str | None = None

    def __bool__(self) -> bool:
        return self.allowed


ANONYMOUS = Principal()
SYSTEM = Principal(kind="system", subject="system", name="hub", sysadmin=True, scopes=frozenset(SCOPES))
"""The hub itself (CLI on the machine, the worker): every right."""
