"""Metadata of the SQL console: browser sessions and saved queries (Alembic revision ``0010_console``).

- ``ConsoleSession``: one signed-in browser (or one sign-in under way). The cookie holds a random
  secret; the row is found by the secret's SHA-256, and what it keeps of the OAuth exchange (the PKCE
  verifier while signing in, then the access and refresh tokens) is sealed with a key derived from the
  secret (``hub.console.sessions.seal``): someone who reads the database holds neither a cookie nor a
  token. ``family_id`` names the refresh tokens' family, so that a session that ends or expires revokes
  them without opening the seal.
- ``SavedQuery``: a title and SQL of one person, visible to them, and, when ``org_id`` is set, to the
  members of that organization while the owner is one too. Only the owner changes or deletes it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, new_id, utcnow


class ConsoleSession(Base):
    """A browser's session of the console (see the module docstring)."""

    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_expires", "expires"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    """SHA-256 (hex) of the cookie's secret."""
    user_id: Mapped[str | None] = mapped_column(ForeignKey("auth_users.id", ondelete="CASCADE"), index=True)
    """The person; None while the sign-in is under way."""
    state: Mapped[str | None] = mapped_column(String(100))
    """The OAuth ``state`` of a sign-in under way."""
    sealed: Mapped[str] = mapped_column(Text)
    """The PKCE verifier (signing in) or the tokens (signed in), sealed with the cookie's secret."""
    csrf: Mapped[str] = mapped_column(String(100))
    """The synchronizer token every state-changing request must carry."""
    next_path: Mapped[str] = mapped_column(String(500), default="/query")
    family_id: Mapped[str | None] = mapped_column(String(36))
    access_expires: Mapped[datetime | None] = mapped_column()
    created: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    expires: Mapped[datetime] = mapped_column()


class SavedQuery(Base):
    """A saved query of the console (see the module docstring)."""

    __tablename__ = "console_saved_queries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("auth_users.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL"), index=True
    )
    """Shared with the members of this organization (None: the owner's alone)."""
    title: Mapped[str] = mapped_column(String(200))
    sql: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    updated: Mapped[datetime] = mapped_column(default=utcnow)
