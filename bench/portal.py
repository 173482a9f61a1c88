"""Benchmark of the public portal with 10,000 datasets in the catalogue.

The catalogue is the demo province (``hub demo``: open datasets, companions with releases, runs) plus
10,000 synthetic datasets (``bench/serve.py``'s ``add_datasets``). The hub runs as its own process
(``hub serve``) on 127.0.0.1; load comes from ``wrk`` (Debian package; bounded by time and a request count).

1. Server time at 8 clients (p50, p99; target p99 < 50 ms) of the home page, a search with two facets
   and the text, and a dataset page (the demo's schools: a DataStore preview, a release, a map);
2. the weight of each page: its HTML, the CSS and scripts it loads, and apart, the chart and map
   libraries that only the pages with a chart or a map load (target: home < 200 KB);
3. Lighthouse (npm ``lighthouse``, installed under ``bench/`` by ``npm ci --prefix bench``, run with
   Debian's Chromium through ``CHROME_PATH``): performance and accessibility of the home page and a
   dataset page, mobile emulation and throttling as Lighthouse sets them by default (target >= 95).

Run: ``.venv/bin/python bench/portal.py [--datasets 10000] [--seconds 10]``. Prints a table and writes
bench/results/portal.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from serve import add_datasets, free_port, wait_http, wrk  # noqa: E402  (bench/serve.py)

CHROME = os.environ.get("CHROME_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROME_FLAGS = (
    "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking "
    "--disable-component-update --disable-sync"
)
PAGES = {
    "home": "/",
    "search, 2 facets": "/dataset?q=dat+dai&groups=linh-vuc-1&res_format=CSV",
    "dataset page": "/dataset/education-schools",
}


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as r:
        return bytes(r.read())


def weight(base: str, path: str) -> dict[str, int]:
    """Bytes of a page's HTML, of the CSS and scripts it loads, and of the libraries its scripts load
    only where a chart or a map is drawn (``data-lib``/``data-css`` of the chart and map scripts)."""
    html = fetch(base + path)
    text = html.decode()
    css = re.findall(r'<link rel="stylesheet" href="([^"]+)"', text)
    js = re.findall(r'<script[^>]+src="([^"]+)"', text)
    lazy = [u.replace("&amp;", "&") for u in re.findall(r'data-(?:lib|css)="([^"]+)"', text)]
    return {
        "html": len(html),
        "css": sum(len(fetch(base + u.replace("&amp;", "&"))) for u in css),
        "js": sum(len(fetch(base + u.replace("&amp;", "&"))) for u in js),
        "chart_map_libraries": sum(len(fetch(base + u)) for u in lazy),
    }


def lighthouse(url: str, out: Path) -> dict[str, float] | str:
    cli = BENCH / "node_modules" / ".bin" / "lighthouse"
    if not cli.exists():
        if shutil.which("npm") is None:
            return "npm is missing"
        subprocess.run(
            ["npm", "ci", "--prefix", str(BENCH), "--ignore-scripts", "--no-audit", "--no-fund"],
            check=True,
            capture_output=True,
            timeout=600,
        )
    profile = tempfile.mkdtemp(prefix="hub-bench-lh-")
    env = {**os.environ, "CHROME_PATH": CHROME}
    cmd = [
        str(cli),
        url,
        "--quiet",
        "--output=json",
        f"--output-path={out}",
        "--only-categories=performance,accessibility",
        f"--chrome-flags={CHROME_FLAGS} --user-data-dir={profile}",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    shutil.rmtree(profile, ignore_errors=True)
    if done.returncode != 0 or not out.exists():
        return f"lighthouse failed: {done.stderr.strip().splitlines()[-1:]}"
    report = json.loads(out.read_text())
    scores = {k: round(100 * float(v["score"] or 0)) for k, v in report["categories"].items()}
    audits = report["audits"]
    for key in (
        "first-contentful-paint",
        "largest-contentful-paint",
        "total-blocking-time",
        "cumulative-layout-shift",
    ):
        scores[key] = audits[key]["displayValue"]
    return scores


def build(work: Path, datasets: int) -> dict[str, str]:
    from hub.demo.run import run_demo_outcome
    from hub.settings import Settings

    port = free_port()
    env = {
        **os.environ,
        "HUB_DATA_DIR": str(work / "data"),
        "HUB_SITE_URL": f"http://127.0.0.1:{port}",
        "HUB_SITE_PROVINCE": "Thành phố Cần Thơ",
        "HUB_SITE_CONTACT_EMAIL": "dulieumo@cantho.gov.vn",
        "HUB_RATE_LIMIT_ANONYMOUS_PER_MINUTE": "0",  # all load comes from one address
        "HUB_QUERY_WORKERS_PRESTART": "false",
    }
    settings = Settings(data_dir=work / "data", site_url=env["HUB_SITE_URL"])
    settings.ensure_dirs()
    outcome = run_demo_outcome(settings, service_port=free_port(), serve_hub=False)
    if not outcome.ok:
        sys.exit(f"the demo failed: {outcome.results}")
    add_datasets(settings, datasets)
    env["PORT"] = str(port)
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=int, default=10_000)
    ap.add_argument("--seconds", type=int, default=10, help="Duration bound of each load run.")
    ap.add_argument("--max-requests", type=int, default=5_000, help="Request bound of each load run.")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1, help="Server processes (hub serve --workers).")
    ap.add_argument("--no-lighthouse", action="store_true")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="hub-bench-portal-"))
    results: dict[str, Any] = {
        "datasets": args.datasets,
        "connections": args.connections,
        "workers": args.workers,
        "pages": {},
    }
    server = None
    try:
        t0 = time.time()
        env = build(work, args.datasets)
        results["setup_seconds"] = round(time.time() - t0, 1)
        print(
            f"catalogue: the demo and {args.datasets:,} datasets ({results['setup_seconds']} s)", flush=True
        )
        port = env["PORT"]
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [
                str(BIN / "hub"),
                "serve",
                "--port",
                port,
                "--workers",
                str(args.workers),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        wait_http(base + "/healthz")
        for path in PAGES.values():  # the index and caches are built by the first requests (of each worker)
            for _ in range(3 * args.workers):
                fetch(base + path)
        count = json.loads(fetch(base + "/api/3/action/package_search?rows=0"))["result"]["count"]
        results["public_datasets"] = count
        for name, path in PAGES.items():
            page: dict[str, Any] = {"path": path, "weight": weight(base, path)}
            # as readers ask: the same URLs again and again (the page cache answers once a page is rendered);
            # then a new URL each time (an ignored parameter that the cache has not seen: every page rendered)
            sep = "&" if "?" in path else "?"
            fresh = [f"{path}{sep}bench={i}" for i in range(20_000)]
            # the last run: one client, new URLs: the time one render takes, without waiting for others
            runs = (("", [path], args.connections), ("uncached_", fresh, args.connections),
                    ("render_1_client_", fresh[10_000:], 1))  # fmt: skip
            for label, paths, connections in runs:
                load = wrk(
                    base,
                    paths,
                    seconds=args.seconds,
                    connections=connections,
                    max_requests=args.max_requests,
                )
                page.update(
                    {
                        f"{label}p50_ms": load["p50_us"] / 1000,
                        f"{label}p99_ms": load["p99_us"] / 1000,
                        f"{label}rps": round(load["rps"], 1),
                        f"{label}errors": load["errors"] + load["non2xx"],
                    }
                )
            results["pages"][name] = page
            print(
                f"{name}: p50 {page['p50_ms']:.1f} ms, p99 {page['p99_ms']:.1f} ms; uncached p50 "
                f"{page['uncached_p50_ms']:.1f} ms, p99 {page['uncached_p99_ms']:.1f} ms",
                flush=True,
            )
        if not args.no_lighthouse:
            results["lighthouse"] = {}
            for name in ("home", "dataset page"):
                scores = lighthouse(base + PAGES[name], work / f"lh-{name.replace(' ', '-')}.json")
                results["lighthouse"][name] = scores
                print(f"lighthouse {name}: {scores}", flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print()
    clients = f"{args.connections} clients, {args.workers} server process(es)"
    print(f"Portal, {results['public_datasets']:,} public datasets, {clients}")
    head = ("page", "p50 ms", "p99 ms", "req/s", "uncached p50", "p99", "1 client p50", "HTML", "CSS", "JS",
            "chart/map libs")  # fmt: skip
    print(f"{head[0]:<18}" + "".join(f"{h:>13}" for h in head[1:]))
    for name, p in results["pages"].items():
        w = p["weight"]
        cells = [
            f"{p['p50_ms']:.1f}",
            f"{p['p99_ms']:.1f}",
            f"{p['rps']:.0f}",
            f"{p['uncached_p50_ms']:.1f}",
            f"{p['uncached_p99_ms']:.1f}",
            f"{p['render_1_client_p50_ms']:.1f}",
            f"{w['html']:,}",
            f"{w['css']:,}",
            f"{w['js']:,}",
            f"{w['chart_map_libraries']:,}",
        ]
        print(f"{name:<18}" + "".join(f"{c:>13}" for c in cells))
    for name, scores in results.get("lighthouse", {}).items():
        print(f"lighthouse {name}: {scores}")
    out = BENCH / "results" / "portal.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
