"""`make demo` without the final serve: generate, run the service, ingest every dataset; twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from typer.testing import CliRunner

from hub.cli.main import app
from hub.demo.run import free_port, port_free, run_demo_outcome
from hub.settings import Settings
from hub.testing.live import live_server

DATASETS = {
    "civil_status.births",
    "civil_status.marriages",
    "civil_status.deaths",
    "land.parcels",
    "education.schools",
    "education.enrolment",
    "addresses.digital_addresses",
}


@pytest.mark.slow
def test_demo_ingests_every_dataset_and_is_safe_to_run_twice(settings: Settings) -> None:
    first = run_demo_outcome(settings, service_port=free_port(), serve_hub=False)
    assert first.generated
    status = {k: getattr(r, "status", r) for k, r in first.results.items()}
    assert status == dict.fromkeys(DATASETS, "succeeded")
    births = first.results["civil_status.births"]
    assert births.rows_read == births.rows_loaded + births.rows_quarantined
    # the messy share is caught by the contracts, and stays far below the 5 % threshold
    for key in ("civil_status.births", "land.parcels", "addresses.digital_addresses"):
        r = first.results[key]
        assert 0 < r.rows_quarantined < 0.05 * r.rows_read, key
    assert 0 < first.results["education.enrolment"].rows_quarantined < 0.05 * 556

    second = run_demo_outcome(settings, service_port=free_port(), serve_hub=False)
    assert not second.generated
    assert second.ok, {k: getattr(r, "error", r) for k, r in second.results.items()}

    with live_server(settings) as base:
        names = httpx.get(f"{base}/api/3/action/package_list", timeout=30).json()["result"]
    # the public sees the open datasets; the shared ones (dùng chung) are for granted agencies only
    assert {"education-schools", "education-enrolment", "addresses-digital_addresses"} <= set(names)
    assert "civil_status-births" not in names


def test_cli_generate_prints_what_it_made(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "generate", "--scale", "small", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Generated the small demo province" in result.output
    assert "parcels" in result.output
    assert (out / "land.db").exists()
    assert (out / "education" / "drop" / "giao-duc_2024-2025.xlsx").exists()


def test_cli_service_refuses_to_start_without_a_key(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("HUB_DEMO_CIVIL_STATUS_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["demo", "civil-status-service", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2
    assert "--api-key" in result.output


@pytest.mark.slow
def test_hub_demo_run_serves_the_hub_and_stops_the_service_on_exit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """What `make demo` does, as a user runs it: a process that serves until Ctrl-C."""
    port, service_port = free_port(), free_port()
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path / "var"), "PORT": str(port)}
    env.pop("HUB_DEMO_CIVIL_STATUS_API_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli.main", "demo", "run", "--service-port", str(service_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if (
                    httpx.get(f"http://127.0.0.1:{port}/api/3/action/package_list", timeout=2).status_code
                    == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the hub did not come up"
            time.sleep(0.5)
        assert httpx.get(f"http://127.0.0.1:{service_port}/health", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/docs", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    text = out.decode()
    assert f"http://127.0.0.1:{port}/api/3/action/package_list" in text
    assert f"http://127.0.0.1:{port}/docs" in text
    assert "civil_status.births" in text
    assert port_free(service_port), "the civil-status service was stopped with the demo"


def test_the_service_stops_when_the_demo_is_killed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """kill -9 of the demo leaves no civil-status service behind on the port."""
    from hub.demo.generate import generate

    generate(tmp_path / "demo", "small")
    service_port = free_port()
    db = str(tmp_path / "demo" / "civil_status.db")
    script = (
        "import sys, time; from pathlib import Path; from hub.demo.run import civil_status_service\n"
        f"with civil_status_service(Path({db!r}), 'k', {service_port}):\n"
        "    print('up', flush=True); time.sleep(600)\n"
    )
    demo = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert demo.stdout is not None
        assert demo.stdout.readline().strip() == b"up"
        assert not port_free(service_port)
        demo.kill()
        demo.wait(timeout=10)
        deadline = time.monotonic() + 15
        while not port_free(service_port):
            assert time.monotonic() < deadline, "the service outlived the demo"
            time.sleep(0.2)
    finally:
        if demo.poll() is None:
            demo.kill()
        if demo.stdout:
            demo.stdout.close()
