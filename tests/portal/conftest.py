"""A live portal for the portal tests, and a real browser for the browser tests.

``portal_site`` (one per session): the whole demo province (``hub.demo.run.run_demo_outcome``: open
datasets, companions of shared data with their releases, runs, groups) plus ``EXTRA`` synthetic open
datasets (enough for paging and richer facets), served by a real uvicorn on 127.0.0.1.

``browser``: Debian's Chromium (``/usr/bin/chromium``, installed by ``make install``/``make test``)
driven by Playwright, never a browser of Playwright's own. Missing, it skips the browser tests, or fails
them under ``HUB_REQUIRE_SERVICES=1``. ``tab`` is a fresh browser context and page whose console errors
are collected.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hub.db import dispose_engines
from hub.settings import Settings
from hub.testing.live import free_port, live_server
from tests.conftest import service_missing

EXTRA = 40
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"


@dataclass
class Site:
    settings: Settings
    base: str


def add_open_datasets(settings: Settings, n: int) -> None:
    """``n`` open datasets of the demo's agencies, with tags, a group and a licence each."""
    from sqlalchemy import select

    from hub.catalog.ckan import ensure_group, set_groups, set_tags
    from hub.catalog.ckan_models import Resource
    from hub.catalog.models import Dataset, Organization
    from hub.db import session_scope

    topics = [
        ("Quy hoạch đất đai", "dat-dai", "đất đai"),
        ("Trường học và học sinh", "giao-duc", "trường học"),
        ("Hộ tịch và dân cư", "tu-phap", "hộ tịch"),
        ("Địa chỉ số", "dia-chi", "địa chỉ"),
    ]
    with session_scope(settings) as session:
        orgs = list(session.scalars(select(Organization).order_by(Organization.name)))
        for i in range(n):
            title, group, tag = topics[i % len(topics)]
            ds = Dataset(
                key=f"extra.ds{i:03d}",
                name=f"thu-nghiem-{i:03d}",
                title=f"{title} năm {2000 + i}",
                title_en=f"Test dataset {i}",
                notes=f"Số liệu {title.lower()} của thành phố Cần Thơ, năm {2000 + i}.",
                owner_org_id=orgs[i % len(orgs)].id,
                sharing="open",
                license_id="cc-by-4.0" if i % 3 else "odc-by",
                spec={"spatial": "92"},
                id=str(uuid.uuid4()),
            )
            session.add(ds)
            session.flush()
            set_tags(session, ds, [tag, "thử nghiệm"])
            set_groups(session, ds, [ensure_group(session, group)])
            if i == 0:  # a linked file, as an agency adds one through the CKAN API
                session.add(Resource(dataset_id=ds.id, kind="link", name="Bảng số liệu gốc", format="CSV",
                                     url="https://opendata.cantho.gov.vn/quy-hoach-2000.csv", size=2048,
                                     hash="sha256:" + "ab" * 32, extras={}))  # fmt: skip


@pytest.fixture(scope="session")
def portal_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from hub.demo.run import run_demo_outcome

    port = free_port()
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("portal") / "data",
        site_url=f"http://127.0.0.1:{port}",
        site_province="Thành phố Cần Thơ",
        site_contact_email="dulieumo@cantho.gov.vn",
        site_contact_phone="0292 3820 000",
    )
    settings.ensure_dirs()
    outcome = run_demo_outcome(settings, service_port=free_port(), serve_hub=False)
    assert outcome.ok, outcome.results
    add_open_datasets(settings, EXTRA)
    with live_server(settings, port=port) as base:
        yield Site(settings, base)
    dispose_engines()


@dataclass
class Tab:
    """A page of a fresh browser context, with the console errors and page errors it met."""

    page: Any
    base: str
    errors: list[str] = field(default_factory=list)

    def go(self, path: str) -> Any:
        return self.page.goto(self.base + path)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        service_missing("Playwright (pip install -e '.[dev]')", exc)
    executable = shutil.which("chromium") or CHROMIUM
    if not Path(executable).exists():
        service_missing(
            "Debian's Chromium (make browser: apt-get install chromium)", FileNotFoundError(CHROMIUM)
        )
    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=executable, args=FLAGS)
    except Exception as exc:
        pw.stop()
        service_missing("Chromium", exc)
    yield chromium
    chromium.close()
    pw.stop()


def new_tab(browser: Any, base: str, **options: Any) -> Iterator[Tab]:
    context = browser.new_context(**{"viewport": {"width": 1280, "height": 900}, **options})
    page = context.new_page()
    tab = Tab(page, base)
    page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: tab.errors.append(str(e)))
    yield tab
    context.close()


@pytest.fixture
def tab(browser: Any, portal_site: Site) -> Iterator[Tab]:
    yield from new_tab(browser, portal_site.base, accept_downloads=True)


@pytest.fixture
def axe_tab(browser: Any, portal_site: Site) -> Iterator[Tab]:
    """A tab whose pages accept the injected axe-core script (bypass_csp: the portal forbids inline
    scripts, and axe is injected as one)."""
    yield from new_tab(browser, portal_site.base, bypass_csp=True)
