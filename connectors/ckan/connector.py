"""The ``ckan`` connector: harvest the catalogue of another CKAN portal (the national portal, a
neighbouring province) with ckanapi.

Two streams: ``datasets`` (one row per package) and ``resources`` (one row per resource, with its
package's id and ``metadata_modified``). Pages come from ``package_search`` sorted by
``metadata_modified``; incremental runs ask only for packages modified after the committed cursor
(``fq=metadata_modified:{cursor TO *]``). Nested values (tags, groups, extras) are JSON text.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import ckanapi
import orjson
import pyarrow as pa
import requests
from pydantic import Field

from connectors.common.records import records_to_batch
from hub.errors import ConnectorError, SourceUnavailableError
from hub.ingest.connector import CheckResult, Connector, ConnectorConfig, Secret, StreamSpec, WriteMode

DATASET_FIELDS = (
    "id", "name", "title", "notes", "url", "version", "license_id", "license_title", "organization",
    "owner_org", "private", "state", "type", "author", "maintainer", "metadata_created",
    "metadata_modified", "num_resources", "tags", "groups", "extras", "source_portal",
)  # fmt: skip
RESOURCE_FIELDS = (
    "id", "package_id", "package_name", "name", "description", "url", "format", "mimetype", "size",
    "created", "last_modified", "position", "package_metadata_modified", "source_portal",
)  # fmt: skip


class CkanConfig(ConnectorConfig):
    url: str = Field(description="Base URL of the CKAN portal, e.g. https://data.gov.vn")
    api_key: Secret | None = Field(default=None, description="API token, for private datasets.")
    q: str = Field(default="*:*", description="package_search query.")
    fq: str | None = Field(default=None, description="Extra filter, e.g. organization:so-tu-phap.")
    rows: int = Field(default=100, gt=0, le=1000, description="Packages per page.")
    include_private: bool = False
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=4, ge=1)
    backoff_seconds: float = Field(default=1.0, ge=0)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


class CkanConnector(Connector[CkanConfig]):
    name = "ckan"
    version = "1.0.0"
    config_model = CkanConfig
    description = (
        "Datasets and resources harvested from another CKAN portal (incremental by metadata_modified)."
    )

    def streams(self) -> list[StreamSpec]:
        return [
            StreamSpec(
                "datasets", ("id",), "metadata_modified", WriteMode.UPSERT, description="One row per dataset."
            ),
            StreamSpec(
                "resources",
                ("id",),
                "package_metadata_modified",
                WriteMode.UPSERT,
                description="One row per resource.",
            ),
        ]

    def _remote(self) -> ckanapi.RemoteCKAN:
        key = self.context.reveal(self.config.api_key) if self.config.api_key else None
        return ckanapi.RemoteCKAN(self.config.url.rstrip("/"), apikey=key, user_agent="lien-thong-hub/ckan")

    def _call(self, remote: ckanapi.RemoteCKAN, action: str, **params: Any) -> Any:
        what = f"{self.config.url} {action}"
        problem = ""
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                return remote.call_action(
                    action, params, requests_kwargs={"timeout": self.config.timeout_seconds}
                )
            except ckanapi.NotAuthorized as exc:
                raise ConnectorError(
                    f"{what}: not authorized ({exc}); check api_key", retryable=False
                ) from exc
            except (ckanapi.ValidationError, ckanapi.SearchQueryError, ckanapi.NotFound) as exc:
                raise ConnectorError(f"{what}: refused: {exc}", retryable=False) from exc
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = f"cannot connect ({type(exc).__name__})"
            except (ckanapi.ServerIncompatibleError, ckanapi.CKANAPIError, ValueError) as exc:
                problem = f"{type(exc).__name__}: {str(exc)[:200]}"
            if attempt < self.config.max_attempts:
                time.sleep(self.config.backoff_seconds * 2 ** (attempt - 1))
        raise SourceUnavailableError(
            f"{what}: {problem} after {self.config.max_attempts} attempts", retryable=True
        )

    def _packages(self, cursor: str | None, limit_pages: int | None = None) -> Iterator[list[dict[str, Any]]]:
        fq = [f for f in (self.config.fq,) if f]
        if cursor:
            stamp = cursor if cursor.endswith("Z") else f"{cursor}Z"
            fq.append(f"metadata_modified:{{{stamp} TO *]")
        remote = self._remote()
        start, pages = 0, 0
        while True:
            result = self._call(
                remote,
                "package_search",
                q=self.config.q,
                fq=" AND ".join(fq),
                rows=self.config.rows,
                start=start,
                sort="metadata_modified asc",
                include_private=self.config.include_private,
            )
            results = [
                p for p in result.get("results", []) if not cursor or str(p.get("metadata_modified")) > cursor
            ]
            pages += 1
            if results:
                yield results
            got = len(result.get("results", []))
            start += got
            if got < self.config.rows or start >= int(result.get("count", 0)):
                return
            if limit_pages is not None and pages >= limit_pages:
                return

    def _dataset_rows(self, packages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = []
        for p in packages:
            org = p.get("organization") or {}
            rows.append({
                **{k: p.get(k) for k in DATASET_FIELDS},
                "organization": org.get("name") if isinstance(org, dict) else org,
                "tags": _json(sorted(t.get("name") for t in p.get("tags") or [])),
                "groups": _json(sorted(g.get("name") for g in p.get("groups") or [])),
                "extras": _json({e.get("key"): e.get("value") for e in p.get("extras") or []}),
                "num_resources": p.get("num_resources", len(p.get("resources") or [])),
                "source_portal": self.config.url,
            })  # fmt: skip
        return rows

    def _resource_rows(self, packages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = []
        for p in packages:
            for r in p.get("resources") or []:
                rows.append({
                    **{k: r.get(k) for k in RESOURCE_FIELDS},
                    "package_id": p.get("id"),
                    "package_name": p.get("name"),
                    "package_metadata_modified": p.get("metadata_modified"),
                    "size": int(r["size"]) if str(r.get("size") or "").isdigit() else None,
                    "source_portal": self.config.url,
                })  # fmt: skip
        return rows

    def read(self, stream: str, state: dict[str, Any] | None) -> Iterator[pa.RecordBatch]:
        spec = self.stream(stream)
        cursor = str(state["cursor"]) if state and state.get("cursor") else None
        fields = DATASET_FIELDS if spec.name == "datasets" else RESOURCE_FIELDS
        to_rows = self._dataset_rows if spec.name == "datasets" else self._resource_rows
        schema = pa.schema(
            [
                (
                    f,
                    pa.int64()
                    if f in ("num_resources", "size", "position")
                    else pa.bool_()
                    if f == "private"
                    else pa.string(),
                )
                for f in fields
            ]
        )
        for packages in self._packages(cursor):
            rows = to_rows(packages)
            if rows:
                batch = records_to_batch(rows, list(fields), schema)
                yield batch.cast(schema) if batch.schema != schema else batch

    def check(self) -> CheckResult:
        try:
            remote = self._remote()
            result = self._call(remote, "package_search", q=self.config.q, fq=self.config.fq or "", rows=1)
        except ConnectorError as exc:
            return CheckResult(False, exc.message)
        except Exception as exc:  # check() reports, never raises
            return CheckResult(False, f"{self.config.url}: {type(exc).__name__}: {exc}")
        count = int(result.get("count", 0))
        return CheckResult(
            True, f"{self.config.url}: CKAN answers, {count} dataset(s) match", {"datasets": count}
        )
