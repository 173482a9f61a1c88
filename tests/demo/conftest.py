"""Fixtures of the demo tests: the small province, generated once per session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hub.demo.generate import DemoPaths, generate
from hub.demo.run import civil_status_service, free_port

API_KEY = "test-key-0123456789"


@pytest.fixture(scope="session")
def demo_small(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoPaths, dict[str, Any]]:
    """The small demo province under a temporary folder, and its manifest."""
    root = tmp_path_factory.mktemp("demo") / "demo"
    manifest = generate(root, "small")
    return DemoPaths(root), manifest


@pytest.fixture(scope="module")
def service_url(demo_small: tuple[DemoPaths, dict[str, Any]]) -> Iterator[str]:
    """Base URL of the simulated civil-status service, a real child process on a free port."""
    paths, _ = demo_small
    with civil_status_service(paths.civil_status_db, API_KEY, free_port()) as url:
        yield url
