"""The one settings object of the hub.

Every setting is read from an environment variable with the ``HUB_`` prefix (``HUB_DATA_DIR``,
``HUB_DATABASE_URL``, ...) or from a ``.env`` file in the working directory. ``get_settings()`` builds
it once per process; tests build their own with ``Settings(data_dir=tmp_path)``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Configuration of one hub instance. See README.md, section Configuration."""

    model_config = SettingsConfigDict(env_prefix="HUB_", env_file=".env", extra="ignore")

    # --- storage -----------------------------------------------------------------------------
    data_dir: Path = Field(
        default=Path("var"), description="Directory of the embedded default: database, warehouse, uploads."
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the metadata database (and the Iceberg SQL catalog). "
        "Default: SQLite in WAL mode at DATA_DIR/hub.db. PostgreSQL: postgresql+psycopg://user@host/db.",
    )
    warehouse_dir: Path | None = Field(
        default=None, description="Where the Iceberg tables' Parquet files live. Default: DATA_DIR/warehouse."
    )
    catalog_dir: Path = Field(
        default=PROJECT_ROOT / "catalog",
        description="Folder of dataset definitions (catalog/<agency>/*.yaml).",
    )
    schemas_dir: Path = Field(
        default=PROJECT_ROOT / "schemas",
        description="Folder of JSON Schema contracts (schemas/<domain>/*.json).",
    )

    # --- ingest ------------------------------------------------------------------------------
    invalid_threshold: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Default share of invalid rows above which a run commits nothing.",
    )
    batch_rows: int = Field(default=131_072, gt=0, description="Target rows per Arrow record batch.")

    # --- web ---------------------------------------------------------------------------------
    site_url: str = Field(default="http://127.0.0.1:8000", description="Public base URL, used in links.")
    site_title: str = Field(default="Cổng dữ liệu Liên Thông", description="Portal title.")
    upload_max_bytes: int = Field(default=100 * 1024 * 1024, description="Largest accepted resource upload.")

    # --- portal ------------------------------------------------------------------------------
    site_province: str = Field(
        default="", description="The province or city whose portal this is, shown in the header and footer."
    )
    site_logo_url: str = Field(
        default="",
        description="The province's logo in the portal's header: a path on this hub (a file under /static) "
        "or empty for none. Nothing is loaded from another host.",
    )
    site_contact_email: str = Field(
        default="", description="Contact e-mail of the open-data office (footer)."
    )
    site_contact_phone: str = Field(default="", description="Contact phone of the open-data office (footer).")
    map_tile_url: str = Field(
        default="",
        description="Tile URL template of the portal's base map ({z}/{x}/{y}); empty: the data is drawn on a "
        "plain background (an intranet without internet needs nothing else).",
    )

    # --- security ----------------------------------------------------------------------------
    secret_key: str = Field(
        default="",
        description="Key that encrypts connector secrets at rest. Required before secrets are stored.",
    )
    token_ttl_seconds: int = Field(default=900, description="Lifetime of access tokens (15 minutes).")
    token_audience: str = Field(
        default="",
        description="The 'aud' of the hub's access tokens and the audience it accepts. Default: SITE_URL.",
    )
    token_alg: str = Field(
        default="ES256", description="Signing algorithm of the hub's tokens: ES256 or RS256."
    )
    refresh_ttl_seconds: int = Field(default=30 * 86400, description="Lifetime of refresh tokens (30 days).")
    api_token_ttl_days: int = Field(default=365, description="Default lifetime of people's CKAN API tokens.")
    oidc_issuers: list[dict[str, str]] = Field(
        default_factory=list,
        description='External OpenID Connect issuers accepted by the APIs, as JSON: [{"issuer": '
        '"https://sso.example/realms/tinh", "audience": "hub"}]. Keys found by discovery and JWKS.',
    )
    rate_limit_client_per_minute: int = Field(
        default=6000, description="Requests per minute per OAuth client (0: no limit)."
    )
    rate_limit_anonymous_per_minute: int = Field(
        default=1200, description="Requests per minute per IP without a valid token (0: no limit)."
    )
    login_max_failures: int = Field(
        default=5, description="Failed logins before an account and IP are locked."
    )
    login_lockout_seconds: int = Field(default=900, description="How long a login lockout lasts.")
    audit_checkpoint_every: int = Field(default=100, description="Sign an audit checkpoint every N entries.")
    audit_checkpoint_seconds: int = Field(default=300, description="... or when the last one is this old.")

    # --- SQL -------------------------------------------------------------------------
    query_timeout_seconds: float = Field(default=30.0, description="Time limit of one SQL query.")
    query_max_rows: int = Field(default=100_000, description="Most rows a SQL query returns through the API.")
    datastore_memory_limit: str = Field(
        default="256MB",
        description="Memory limit of the server's own locked DuckDB instance, which runs the searches "
        "the hub builds itself (datastore_search); SQL written outside the hub runs in query workers.",
    )

    # --- query engine (SQL from outside: DataStore SQL, /api/v1/query, releases) ---------------
    query_workers: int = Field(
        default=2,
        ge=1,
        description="Worker processes that run SQL written outside the hub (DataStore SQL, releases, "
        "/api/v1/query); each has an address-space and a time limit and is killed when it passes them.",
    )
    query_workers_prestart: bool = Field(
        default=True,
        description="Start the query workers when the server starts (else at the first query, which then "
        "waits about a second).",
    )
    query_queue: int = Field(
        default=16,
        ge=0,
        description="Queries that may wait for a free query worker; beyond this a query is refused at "
        "once with 503 and Retry-After (the hub is busy).",
    )
    query_worker_memory_mb: int = Field(
        default=1024,
        ge=64,
        description="Address space a query worker may add above what it uses when idle (MB); a query "
        "that needs more fails with 'out of memory' and the worker is replaced.",
    )
    query_memory_limit: str = Field(
        default="512MB", description="DuckDB's own memory limit in each query worker (spills or fails above)."
    )
    query_cache_mb: int = Field(
        default=512,
        ge=0,
        description="Memory (per process) for Arrow copies of table snapshots that queries read; larger "
        "snapshots are scanned from their files at each query (0: never copy).",
    )
    query_max_sql_chars: int = Field(
        default=100_000, ge=100, description="Longest SQL text accepted from outside (characters)."
    )
    query_max_nesting: int = Field(
        default=64,
        ge=4,
        le=100,  # the parsers of SQL and fq use a few stack frames a level: beyond ~150 Python's recursion
        description="Deepest nesting of parentheses in SQL and of JSON in filters, q and request bodies.",
    )

    # --- analysts' door (/api/v1/query and query jobs) -----------------------------------------
    query_client_concurrency: int = Field(
        default=2,
        ge=1,
        description="Queries one client (an OAuth client, a person, or an anonymous IP address) may run at "
        "once through /api/v1/query; beyond this 429 with Retry-After. Each runs in a query worker with "
        "HUB_QUERY_WORKER_MEMORY_MB, so this also bounds a client's memory.",
    )
    query_client_daily_rows: int = Field(
        default=0,
        ge=0,
        description="Rows one client may receive a day (Vietnam time) through /api/v1/query and query jobs; "
        "a query started under the quota finishes, the next is refused with 429 until midnight "
        "(0: no quota).",
    )
    query_job_workers: int = Field(
        default=1,
        ge=1,
        description="Query jobs (/api/v1/queries) run at once per server process; each holds a query "
        "worker while it runs, the others wait in line.",
    )
    query_jobs_per_client: int = Field(
        default=4, ge=1, description="Query jobs one client may have queued or running at once (429 beyond)."
    )
    query_job_timeout_seconds: float = Field(
        default=3600.0, gt=0, description="Time limit of one query job (the worker's compute time)."
    )
    query_result_ttl_hours: float = Field(
        default=24.0,
        gt=0,
        description="How long the result file of a query job is kept (DATA_DIR/query-results) before it is "
        "deleted; the job stays listed.",
    )

    # --- PostgreSQL protocol --------------------------------------------------------------------
    pg_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port of the PostgreSQL-protocol endpoint that `hub serve` opens beside the web server "
        "(psql, JDBC/ODBC drivers, BI tools; see docs/analysts.md); 0: no endpoint. `hub serve --pg-port` "
        "sets it for one run.",
    )
    pg_host: str = Field(
        default="127.0.0.1", description="Address the PostgreSQL-protocol endpoint listens on (0.0.0.0: all)."
    )
    pg_tls_cert: Path | None = Field(
        default=None,
        description="PEM certificate (chain) of the PostgreSQL-protocol endpoint; with PG_TLS_KEY clients "
        "may connect with TLS (sslmode=require/verify-full). Without it an SSL request is declined and "
        "sslmode=prefer connects in plain text.",
    )
    pg_tls_key: Path | None = Field(default=None, description="PEM private key of PG_TLS_CERT.")
    pg_max_connections: int = Field(
        default=64, ge=1, description="Most connections the PostgreSQL-protocol endpoint holds at once."
    )

    # --- SQL console (/query) ---------------------------------------------------------------------
    console_org: str = Field(
        default="",
        description="Short name of the organization that owns the SQL console's OAuth client (hub-console, "
        "made on the console's first use), usually the hub's operator; empty: the first organization by "
        "name.",
    )
    console_session_hours: float = Field(
        default=12.0,
        gt=0,
        description="How long a sign-in to the SQL console lasts at most (then sign in again); never longer "
        "than HUB_REFRESH_TTL_SECONDS.",
    )
    console_idle_minutes: float = Field(
        default=60.0, gt=0, description="A SQL console session unused this long ends (sign in again)."
    )

    # --- request limits ----------------------------------------------------------------------
    request_max_json_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Largest JSON request body accepted (bytes)."
    )
    search_max_fq_chars: int = Field(
        default=10_000, ge=100, description="Longest package_search q or fq accepted (characters)."
    )

    # --- audit witness -----------------------------------------------------------------------
    audit_witness_dir: Path | None = Field(
        default=None,
        description="Append-only directory where every signed audit checkpoint is also written, outside "
        "the metadata database. Default: DATA_DIR/audit-witness.",
    )
    audit_witness_url: str = Field(
        default="",
        description="A remote witness instead of the directory: checkpoints are POSTed to this URL and "
        "read back with GET (see docs/auth.md).",
    )

    # --- ingest guard ------------------------------------------------------------------------
    ingest_max_drop_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="A replace run (a run that removes rows) whose source yields no rows, or fewer than "
        "(1 - this share) of the current table's rows, fails unless started with --allow-shrink (a source "
        "turned to garbage must not empty a loaded table). Upsert runs never remove rows.",
    )

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if self.warehouse_dir is None:
            self.warehouse_dir = self.data_dir / "warehouse"
        if self.audit_witness_dir is None:
            self.audit_witness_dir = self.data_dir / "audit-witness"
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'hub.db'}"
        return self

    @property
    def warehouse_path(self) -> Path:
        assert self.warehouse_dir is not None
        return self.warehouse_dir

    def for_server(self, host: str, port: int) -> Settings:
        """These settings with SITE_URL where the hub listens (``hub serve``, ``hub demo run``), unless
        HUB_SITE_URL was given: links in API answers, release files and DCAT then point at this server."""
        if "site_url" in self.model_fields_set:
            return self
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        return self.model_copy(update={"site_url": f"http://{shown}:{port}"})

    def ensure_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.warehouse_path.mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
