"""Field labels of contracts and releases for the console's list of tables, kept a minute each.

A contract's labels are its fields' ``x-label`` (``vi``, ``en``); a release's are the titles of the
fields of its ``datapackage.json`` (written ``"<vi> / <en>"`` by the release build).
"""

from __future__ import annotations

import json
from pathlib import Path

from hub.cache import TtlCache
from hub.contracts import load_contract
from hub.errors import HubError

Label = tuple[str | None, str | None]


class Labels:
    """Field labels of contracts and releases, kept ``ttl`` seconds."""

    def __init__(self, ttl: float = 60.0) -> None:
        self._cache: TtlCache[tuple[str, str], dict[str, Label]] = TtlCache(ttl)

    def contract(self, ref: str, schemas_dir: Path) -> dict[str, Label]:
        def load(key: tuple[str, str]) -> dict[str, Label]:
            try:
                return {f.name: (f.label_vi, f.label_en) for f in load_contract(key[1], schemas_dir).fields}
            except HubError:
                return {}

        return self._cache.get(("contract", ref), load)

    def release(self, parquet: str) -> dict[str, Label]:
        def load(key: tuple[str, str]) -> dict[str, Label]:
            path = Path(key[1]).with_name("datapackage.json")
            try:
                fields = json.loads(path.read_text(encoding="utf-8"))["resources"][0]["schema"]["fields"]
            except (OSError, ValueError, KeyError, IndexError, TypeError):
                return {}
            out: dict[str, Label] = {}
            for f in fields:
                vi, _, en = str(f.get("title") or "").partition(" / ")
                out[str(f.get("name"))] = (vi or None, en or None)
            return out

        return self._cache.get(("release", parquet), load)
