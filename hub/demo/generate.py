"""``hub demo generate``: the demo province's source systems, written where the catalog expects them.

Layout under the output folder (default ``{data_dir}/demo``)::

    land.db                       land registry (SQLite), table parcels
    civil_status.db               civil-status registry's store, served by the simulated service
    civil_status/export/deaths.xml   the registry's XML export of death registrations
    education/drop/*.xlsx         one workbook per school year (sheets schools, enrolment)
    addresses/digital_addresses.csv
    manifest.json                 scale, seed, counts, messy rows, seconds; written last

``generate`` is idempotent through the manifest: ``ensure_generated`` does nothing when a manifest of
the same scale, seed and generator version is there.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from hub.demo import addresses as addr
from hub.demo import common as c
from hub.demo import education as edu
from hub.demo import land, people
from hub.demo.civil_status_store import Store, write_store, write_xml_export
from hub.errors import ConfigError

GENERATOR_VERSION = 4
DEFAULT_SEED = 20250701


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @property
    def land_db(self) -> Path:
        return self.root / "land.db"

    @property
    def civil_status_db(self) -> Path:
        return self.root / "civil_status.db"

    @property
    def deaths_xml(self) -> Path:
        return self.root / "civil_status" / "export" / "deaths.xml"

    @property
    def education_drop(self) -> Path:
        return self.root / "education" / "drop"

    @property
    def addresses_csv(self) -> Path:
        return self.root / "addresses" / "digital_addresses.csv"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"


def read_manifest(paths: DemoPaths) -> dict[str, Any] | None:
    try:
        data = orjson.loads(paths.manifest.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def is_generated(paths: DemoPaths, scale: str, seed: int = DEFAULT_SEED) -> bool:
    m = read_manifest(paths)
    return bool(
        m
        and m.get("version") == GENERATOR_VERSION
        and m.get("scale") == scale
        and m.get("seed") == seed
        and paths.land_db.exists()
        and paths.civil_status_db.exists()
        and paths.deaths_xml.exists()
        and paths.addresses_csv.exists()
    )


def generate(
    out: Path,
    scale: str = "small",
    *,
    seed: int = DEFAULT_SEED,
    land_url: str | None = None,
    education_url: str | None = None,
    progress: c.Progress | None = None,
) -> dict[str, Any]:
    """Generate every source system of the demo province into ``out``; returns the manifest."""
    if scale not in c.SCALES:
        raise ConfigError(f"unknown scale {scale!r}; choose one of {', '.join(c.SCALES)}")
    sc = c.SCALES[scale]
    paths = DemoPaths(out)
    out.mkdir(parents=True, exist_ok=True)
    paths.manifest.unlink(missing_ok=True)
    started = time.perf_counter()
    counts: dict[str, int] = {}
    messy: dict[str, int] = {}
    timings: dict[str, float] = {}
    steps = 8 + bool(land_url) + bool(education_url)

    def step(name: str) -> None:
        timings[name] = round(time.perf_counter() - started - sum(timings.values()), 3)
        if progress:
            progress(name, 1, steps)

    pop = people.population(sc.people, seed)
    counts["people"] = len(pop)
    step("people")
    civil: dict[str, people.Columns] = {}
    for kind, fn in (("births", people.births), ("marriages", people.marriages), ("deaths", people.deaths)):
        civil[kind], messy[kind] = fn(pop, seed, sc.messy_share)
        counts[kind] = len(civil[kind]["registration_number"])
    step("civil status")
    write_store(paths.civil_status_db, civil)
    write_xml_export(Store(paths.civil_status_db), "deaths", paths.deaths_xml)
    step("civil-status store")
    del civil
    parcels, messy["parcels"] = land.parcels(pop, sc.parcels, seed, sc.messy_share)
    counts["parcels"] = len(parcels["ward_code"])
    step("land parcels")
    land.write_sqlite(parcels, paths.land_db)
    step("land SQLite")
    if land_url:
        land.write_postgres(parcels, land_url)
        step("land PostgreSQL")
    del parcels, pop
    schools, enrolment = edu.schools_and_enrolment(sc, seed)
    counts["schools"] = len(schools["school_code"])
    counts["enrolment"] = len(enrolment["school_code"])
    if education_url:  # the database holds clean rows; the hand-filled workbooks get the mistakes
        edu.write_mariadb(schools, enrolment, education_url)
        step("education MariaDB")
    messy["education"] = edu.spoil(schools, enrolment, seed, sc.messy_share)
    edu.write_workbooks(schools, enrolment, paths.education_drop)
    step("education workbooks")
    cols, messy["addresses"] = addr.addresses(sc.addresses, seed, sc.messy_share)
    counts["addresses"] = len(cols["address_code"])
    step("addresses")
    addr.write_csv(cols, paths.addresses_csv)
    step("addresses CSV")
    manifest = {
        "version": GENERATOR_VERSION,
        "scale": scale,
        "seed": seed,
        "as_of": c.as_of().isoformat(),
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 2),
        "timings": timings,
        "counts": counts,
        "messy": messy,
        "land_url": bool(land_url),
        "education_url": bool(education_url),
    }
    tmp = paths.manifest.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    tmp.replace(paths.manifest)
    return manifest


def ensure_generated(
    out: Path, scale: str = "small", *, seed: int = DEFAULT_SEED, progress: c.Progress | None = None
) -> tuple[dict[str, Any], bool]:
    """(manifest, generated now): generates unless the same scale and seed are already there."""
    paths = DemoPaths(out)
    if is_generated(paths, scale, seed):
        m = read_manifest(paths)
        assert m is not None
        return m, False
    return generate(out, scale, seed=seed, progress=progress), True
