"""schemathesis over the whole OpenAPI spec of a live hub (issue 10, point 4): no operation answers 5xx.

A real uvicorn server on 127.0.0.1 serves a small catalogue (``tests.api.support``: two agencies, three
datasets with tables, one release); every operation of its ``/openapi.json`` gets examples generated
from its schema, valid ones and invalid ones, sent anonymously and with a sysadmin's token (the token
that reaches furthest), and schemathesis's ``not_a_server_error`` check judges every answer.

Examples are bounded and derandomized (a fixed seed per operation), so a run takes the same requests
every time. Every 5xx is collected (no shrinking: one request per failure is enough to reproduce it)
and the test fails listing each request and answer, except the cases listed in ``KNOWN``: 500s in
code another engineer is rewriting (issue 10), which make the test xfail while they happen. When one is
fixed, remove its entry.

(schemathesis's own ``from_fixture``/``parametrize`` cannot be used: its lazy loader needs internals that
pytest 9 removed, and loading the spec at import would start a hub during collection.)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from sqlalchemy import select

from hub.catalog.models import Dataset
from hub.db import dispose_engines, session_scope
from hub.publish.models import Release, ReleaseFile, ReleaseVersion
from hub.testing.live import free_port, live_server
from tests.api.conftest import make_users
from tests.api.support import build_hub, hub_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAX_EXAMPLES = 10
"""Examples per operation, generation mode and caller."""
MAX_EXAMPLES_PER_ACTION = 4
"""... for each action of ``/api/3/action/{name}``, which stands for every action of its ``name`` enum
(``/api/action/{name}`` is the same code: it gets ``MAX_EXAMPLES`` in all, with any name)."""
ACTIONS_PATH = "/api/3/action/{name}"


@dataclass(frozen=True)
class Known:
    """A 5xx in another engineer's area: the operation, what in the request gives it, and why."""

    method: str
    path: str
    matches: Callable[[requests.PreparedRequest], bool]
    reason: str


KNOWN: list[Known] = []
"""5xx answers that are not this module's to fix (see the module docstring); each names the issue."""


@dataclass
class Failure:
    caller: str
    operation: str
    request: str
    status: int
    answer: str
    known: Known | None


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, a sysadmin's token) of a live hub with the test catalogue, a release and no rate limits."""
    port = free_port()
    settings_ = hub_settings(tmp_path_factory.mktemp("schemathesis"), port).model_copy(
        update={"rate_limit_anonymous_per_minute": 0, "rate_limit_client_per_minute": 0}
    )
    build_hub(settings_)
    tokens = make_users(settings_)
    with session_scope(settings_) as s:
        ds = s.scalar(select(Dataset).where(Dataset.key == "land.parcels"))
        assert ds is not None
        rel = Release(
            dataset_id=ds.id, name="parcels-by-ward", title="Thửa đất theo xã", origin="api", spec={}
        )
        s.add(rel)
        s.flush()
        version = ReleaseVersion(release_id=rel.id, version=1, rows=1, path="releases/none/1")
        s.add(version)
        s.flush()
        s.add(
            ReleaseFile(
                version_id=version.id,
                name="data.csv",
                format="CSV",
                media_type="text/csv",
                path="releases/none/1/data.csv",
                size=1,
                sha256="0" * 64,
            )
        )
    with live_server(settings_, port=port) as base:
        yield base, tokens["admin"]
    dispose_engines()


def _describe(request: requests.PreparedRequest) -> str:
    body = request.body
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    auth = " (token)" if request.headers.get("Authorization") else ""
    return f"{request.method} {request.url}{auth}" + (f" body={text[:300]!r}" if text else "")


def _can_be_invalid(operation: Any) -> bool:
    """Whether a request of ``operation`` can break its schema (else negative generation searches in vain:
    any text is a valid path segment, and a missing path segment is another URL)."""
    raw: dict[str, Any] = operation.definition.raw
    if "requestBody" in raw:
        return True
    for parameter in raw.get("parameters", []):
        schema = parameter.get("schema", {})
        if parameter.get("in") != "path" and parameter.get("required"):
            return True
        if schema.get("type") != "string" or set(schema) - {"type", "title", "description"}:
            return True
    return False


def _run_operation(operation: Any, base: str, headers: dict[str, str], caller: str) -> list[Failure]:
    failures: list[Failure] = []
    seen: set[tuple[str, int]] = set()
    label = f"{operation.method.upper()} {operation.path}"

    def call(case: Any) -> None:
        response = case.call(base_url=base, headers=headers, timeout=60)
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except FailureGroup:  # what the check found: recorded, not raised (hypothesis would stop there)
            request = response.request
            known = next(
                (
                    k
                    for k in KNOWN
                    if k.method == request.method and k.path == operation.path and k.matches(request)
                ),
                None,
            )
            key = (label, response.status_code) if known is None else (f"{label} {known.reason}", 0)
            if key not in seen:  # one example per operation and status (per known case) is enough
                seen.add(key)
                failures.append(
                    Failure(
                        caller, label, _describe(request), response.status_code, response.text[:500], known
                    )
                )

    modes = [GenerationMode.POSITIVE, *([GenerationMode.NEGATIVE] if _can_be_invalid(operation) else [])]
    runs: list[tuple[dict[str, Any] | None, int]] = [(None, MAX_EXAMPLES)]
    if operation.path == ACTIONS_PATH:
        runs = [({"name": name}, MAX_EXAMPLES_PER_ACTION) for name in _action_names(operation)]
    for path_parameters, examples in runs:
        for mode in modes:
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)
            test = settings(
                max_examples=examples,
                derandomize=True,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )(given(case=strategy)(call))
            try:
                test()
            except Unsatisfiable:  # no invalid request exists after all
                assert mode is GenerationMode.NEGATIVE, label
    return failures


def _action_names(operation: Any) -> list[str]:
    for parameter in operation.definition.raw.get("parameters", []):
        if parameter.get("in") == "path" and parameter.get("name") == "name":
            names: list[str] = parameter["schema"]["enum"]
            assert len(names) >= 30, "the spec lost the names of the actions"
            return names
    raise AssertionError(f"{ACTIONS_PATH} has no name parameter")


def _oneline(text: str) -> str:
    return re.sub(r"\s+", " ", text)[:300]


@pytest.mark.parametrize("caller", ["anonymous", "sysadmin-token"])
def test_no_operation_answers_5xx(hub: tuple[str, str], caller: str) -> None:
    base, token = hub
    headers = {"Authorization": token} if caller == "sysadmin-token" else {}
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    failures: list[Failure] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        failures += _run_operation(operation, base, headers, caller)
    assert operations >= 30, "the spec lost operations"
    unexpected = [f for f in failures if f.known is None]
    report = "\n".join(
        f"- {f.operation}: {f.request}\n  -> {f.status} {_oneline(f.answer)}" for f in failures
    )
    assert not unexpected, f"{len(unexpected)} operations answered 5xx ({caller}):\n{report}"
    if failures:
        pytest.xfail(f"known 5xx in code being rewritten (issue 10):\n{report}")
