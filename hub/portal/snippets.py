"""Copy-ready examples of a dataset page: curl, Python (ckanapi, pandas) and R, for the CKAN API, the
DataStore and the files. Every URL is the site's own (``HUB_SITE_URL``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Snippet:
    id: str
    label: str
    language: str
    code: str


def snippets(
    base: str, name: str, *, datastore_id: str | None, csv_url: str | None, parquet_url: str | None
) -> list[Snippet]:
    """The examples of dataset ``name``: its metadata, its DataStore table when it has one, its CSV file
    (the DataStore's download or the latest release's) and Parquet file when there are."""
    base = base.rstrip("/")
    out = [
        Snippet(
            "curl-show",
            "curl: package_show",
            "shell",
            f"curl '{base}/api/3/action/package_show?id={name}'",
        )
    ]
    if datastore_id:
        out.append(
            Snippet(
                "curl-datastore",
                "curl: datastore_search",
                "shell",
                f"curl '{base}/api/3/action/datastore_search?resource_id={datastore_id}&limit=5'",
            )
        )
    if csv_url:
        out.append(Snippet("curl-file", "curl: CSV", "shell", f"curl -L -o data.csv '{csv_url}'"))
    ckan = [
        "from ckanapi import RemoteCKAN",
        "",
        f'portal = RemoteCKAN("{base}")',
        f'dataset = portal.action.package_show(id="{name}")',
    ]
    if datastore_id:
        ckan.append(
            f'rows = portal.action.datastore_search(resource_id="{datastore_id}", limit=100)["records"]'
        )
    out.append(Snippet("python-ckanapi", "Python: ckanapi", "python", "\n".join(ckan)))
    if csv_url or parquet_url:
        lines = ["import pandas as pd", ""]
        if csv_url:
            lines.append(f'df = pd.read_csv("{csv_url}")')
        if parquet_url:
            lines.append(f'df = pd.read_parquet("{parquet_url}")  # pyarrow')
        out.append(Snippet("python-pandas", "Python: pandas", "python", "\n".join(lines)))
    r = []
    if csv_url:
        r.append(f'df <- read.csv("{csv_url}", encoding = "UTF-8")')
    if datastore_id:
        r += [
            "library(jsonlite)",
            f'res <- fromJSON("{base}/api/3/action/datastore_search?resource_id={datastore_id}&limit=100")',
            "rows <- res$result$records",
        ]
    if r:
        out.append(Snippet("r", "R", "r", "\n".join(r)))
    return out
