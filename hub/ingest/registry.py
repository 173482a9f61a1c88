"""The connector registry: which connector classes exist and how a dataset's source becomes a connector.

Connector classes are discovered through the ``hub.connectors`` entry-point group. The built-in
connectors (``files``, ``sql``) come through the same door as an agency's own package: the hub's
``pyproject.toml`` declares them there. Two entry points with the same name are an error that names
both packages, because silently preferring one would ingest from the wrong system.

``register_connector_class`` adds a class in-process (tests, notebooks). ``build_connector`` turns a
catalog ``source:`` block into a configured connector; when its ``connector`` names no class, it is
looked up among the registered connector *instances* (``hub.ingest.instances.lookup``), which carry
a connector name and a stored config.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.errors import ConfigError, NotFoundError
from hub.ingest import instances, secrets
from hub.ingest.connector import Connector, ConnectorContext

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy.orm import Session

    from hub.catalog.spec import DatasetSpec, SourceSpec
    from hub.settings import Settings

ENTRY_POINT_GROUP = "hub.connectors"


@dataclass(frozen=True)
class ConnectorInfo:
    """A connector class as the registry knows it: name, version, the distribution that ships it."""

    name: str
    version: str
    package: str
    cls: type[Connector[Any]]

    @property
    def description(self) -> str:
        if self.cls.description:
            return self.cls.description
        doc = (self.cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


_lock = threading.Lock()
_discovered: dict[str, ConnectorInfo] | None = None
_broken: dict[str, ConfigError] = {}
_in_process: dict[str, ConnectorInfo] = {}


def _package_of(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is not None:
        return str(dist.metadata["Name"])
    return ep.value.split(":", 1)[0].split(".", 1)[0]


def _load(ep: EntryPoint) -> ConnectorInfo:
    try:
        cls = ep.load()
    except Exception as exc:
        raise ConfigError(
            f"connector {ep.name!r} ({ep.value}, package {_package_of(ep)}) cannot be loaded: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConfigError(
            f"entry point {ep.name!r} ({ep.value}, package {_package_of(ep)}) is not a Connector subclass"
        )
    if getattr(cls, "name", None) != ep.name:
        raise ConfigError(
            f"entry point {ep.name!r} ({ep.value}) points to a connector named "
            f"{getattr(cls, 'name', None)!r}; the entry-point name and the class's name must agree"
        )
    return ConnectorInfo(name=ep.name, version=str(cls.version), package=_package_of(ep), cls=cls)


def _discover() -> dict[str, ConnectorInfo]:
    global _discovered
    with _lock:
        if _discovered is not None:
            return _discovered
        eps = list(entry_points(group=ENTRY_POINT_GROUP))
        by_name: dict[str, list[EntryPoint]] = {}
        for ep in eps:
            by_name.setdefault(ep.name, []).append(ep)
        found: dict[str, ConnectorInfo] = {}
        _broken.clear()
        for name, group in sorted(by_name.items()):
            # The same distribution can appear twice on sys.path (editable + build dir); that is not a clash.
            distinct = {(ep.value, _package_of(ep)) for ep in group}
            if len(distinct) > 1:
                ordered = sorted(distinct, key=lambda t: t[1])
                which = " and ".join(f"{pkg} ({value})" for value, pkg in ordered)
                raise ConfigError(
                    f"connector name {name!r} is registered twice in the {ENTRY_POINT_GROUP} entry-point "
                    f"group: by {which}; uninstall or rename one"
                )
            try:
                found[name] = _load(group[0])
            except ConfigError as exc:  # one broken plugin must not hide the others
                _broken[name] = exc
        _discovered = found
        return found


def refresh() -> None:
    """Forget discovered entry points (after installing a plugin in a running process)."""
    global _discovered
    with _lock:
        _discovered = None


def register_connector_class(cls: type[Connector[Any]], *, package: str = "(in-process)") -> None:
    """Register a connector class in this process (tests, notebooks). Its name must be new."""
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConfigError(f"{cls!r} is not a Connector subclass")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{cls.__qualname__} has no name")
    existing = _in_process.get(name) or _discover().get(name)
    if existing is not None and existing.cls is not cls:
        raise ConfigError(
            f"connector name {name!r} is already registered by {existing.package} "
            f"({existing.cls.__module__}.{existing.cls.__qualname__}); cannot register it again "
            f"for {package} ({cls.__module__}.{cls.__qualname__})"
        )
    _in_process[name] = ConnectorInfo(name=name, version=str(cls.version), package=package, cls=cls)


def unregister_connector_class(name: str) -> None:
    """Remove an in-process registration (test clean-up)."""
    _in_process.pop(name, None)


def broken_connectors() -> dict[str, str]:
    """Entry points that could not be loaded: name -> what is wrong."""
    _discover()
    return {name: exc.message for name, exc in sorted(_broken.items())}


def available_connectors() -> list[ConnectorInfo]:
    """All connector classes, by name: entry points first, then in-process registrations."""
    merged = {**_discover(), **_in_process}
    return [merged[k] for k in sorted(merged)]


def get_connector_class(name: str) -> type[Connector[Any]]:
    """The connector class registered under ``name``; ``NotFoundError`` lists the known names."""
    info = _in_process.get(name) or _discover().get(name)
    if info is None and name in _broken:
        raise _broken[name]
    if info is None:
        known = ", ".join(i.name for i in available_connectors()) or "none"
        raise NotFoundError(f"no connector named {name!r}; installed connectors: {known}")
    return info.cls


def _lookup_instance(session: Session | None, name: str) -> tuple[str, dict[str, Any]] | None:
    """A connector instance registered at run time (``hub connectors add``) under ``name``."""
    if session is None:
        from hub.db import session_scope
        from hub.settings import get_settings

        with session_scope(get_settings()) as own:
            return instances.lookup(own, name)
    return instances.lookup(session, name)


def _secret_resolver(settings: Settings, session: Session | None) -> Any:
    """The resolver of stored (encrypted) connector secrets."""
    return secrets.resolver(settings, session)


def build_connector(
    settings: Settings,
    source: SourceSpec,
    *,
    session: Session | None = None,
    dataset_spec: DatasetSpec | None = None,
    arrow_schema: pa.Schema | None = None,
) -> Connector[Any]:
    """A configured connector for a catalog ``source:`` block.

    ``source.connector`` names a connector class or, failing that, a registered connector instance
    whose stored config is the base that ``source.config`` overrides key by key. ``dataset_spec``
    gives the dataset's cursor field and primary key, ``arrow_schema`` its contract's Arrow schema
    (the types of columns a source leaves null, say); both go into the connector's context when it
    is built, and nothing changes it after.
    """
    config: dict[str, Any] = dict(source.config)
    name = source.connector
    if name in _in_process or name in _discover() or name in _broken:
        cls = get_connector_class(name)
    else:
        found = _lookup_instance(session, name)
        if found is None:
            known = ", ".join(i.name for i in available_connectors()) or "none"
            raise NotFoundError(
                f"no connector or connector instance named {name!r}; installed connectors: {known}"
            )
        connector_name, stored = found
        cls = get_connector_class(connector_name)
        config = {**stored, **config}
    context = ConnectorContext(
        base_dir=str(Path(settings.data_dir)),
        batch_rows=settings.batch_rows,
        secret_resolver=_secret_resolver(settings, session),
        cursor_field=dataset_spec.cursor_field if dataset_spec is not None else None,
        primary_key=tuple(dataset_spec.primary_key or ()) if dataset_spec is not None else (),
        arrow_schema=arrow_schema,
    )
    return cls.from_dict(config, context)
