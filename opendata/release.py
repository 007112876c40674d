"""Writing one versioned release: read the aggregate views as mebuku_opendata, protect,
write CSV/GeoJSON + data dictionaries + the DCAT catalogue + metadata, remember what was
published (the suppression memory) and point ``LATEST`` at the new release."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg

from core.i18n import Lang
from core.resources import default_gtfs
from opendata import catalogue, export, formats
from opendata.datasets import BY_ID, DATASETS, Dataset
from opendata.export import Protection, Record

LATEST = "LATEST"
RELEASES = "releases"
GTFS_RT_LINKS = (
    ("GTFS-Realtime vehicle positions", "gtfs-rt/vehicle-positions", "application/x-protobuf"),
    ("GTFS-Realtime trip updates", "gtfs-rt/trip-updates", "application/x-protobuf"),
)


@dataclass(frozen=True)
class ReleaseOptions:
    """Where and how to publish."""

    out_dir: Path
    k: int = 10
    epsilon: float = 0.0
    base_url: str = "http://localhost:8000/open/"
    api_url: str = "http://localhost:8000/"
    lang: Lang = "ja"
    now: datetime | None = None


@dataclass
class Release:
    """A written release: id, folder, files and what was protected."""

    release_id: str
    folder: Path
    files: list[catalogue.FileInfo] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


Step = Callable[[str], None]


def build_rows(
    views: Mapping[str, list[Record]], history: Mapping[str, Any], opts: ReleaseOptions
) -> tuple[dict[str, list[Record]], dict[str, Protection]]:
    """Every tabular dataset's rows (pure), with the protection outcome per dataset."""
    n = export.names_from(views, opts.lang)
    prot = {
        ds: Protection(opts.k, history, opts.epsilon if ds == "mytaku_use" else 0.0)
        for ds in ("bus_ridership_stop", "bus_ridership_route", "mytaku_use")
    }
    rows: dict[str, list[Record]] = {
        "bus_ridership_stop": export.bus_ridership_stop(
            views["bus_boardings_stop"], n, prot["bus_ridership_stop"]
        ),
        "bus_ridership_route": export.bus_ridership_route(
            views["bus_boardings_route"], n, prot["bus_ridership_route"]
        ),
        "mytaku_use": export.mytaku_use(views["mytaku_use"], n, prot["mytaku_use"]),
    }
    for ds_id, view in (
        ("route_punctuality", "route_punctuality"),
        ("subsidy_budget", "subsidy_budget"),
        ("autonomy_monthly", "autonomy_monthly"),
        ("autonomy_takeovers", "autonomy_takeovers"),
        ("fiveg_trial_kpis", "fiveg_trial_kpis"),
    ):
        cols = [c.name for c in BY_ID[ds_id].columns]
        rows[ds_id] = export.plain(views[view], cols, n)
    for ds_id, r in rows.items():
        keys = [c.name for c in BY_ID[ds_id].columns][:6]
        r.sort(key=export.sort_key(*keys))
    return rows, prot


def geo_features(views: Mapping[str, list[Record]]) -> dict[str, list[tuple[Any, Any]]]:
    """(geometry, properties) of the GeoJSON datasets."""
    towns = [
        (
            t["geometry"],
            {
                "town_code": t["key_code"],
                "town_name": t["name"],
                "population": t["population"],
                "households": t["households"],
            },
        )
        for t in sorted(views["towns"], key=lambda t: str(t["key_code"]))
    ]
    cells = [
        (formats.cell_polygon(int(c["cx"]), int(c["cy"])), c)
        for c in sorted(
            views["fiveg_coverage_cells"],
            key=lambda c: (c["trial_id"], c["cx"], c["cy"]),
        )
        if int(c["samples"]) >= 10
    ]
    return {"towns": towns, "fiveg_coverage_cells": cells}


def _period(rows: Mapping[str, list[Record]]) -> tuple[date, date] | None:
    days = [
        date.fromisoformat(str(r[f])[:10])
        for ds in ("route_punctuality", "bus_ridership_stop", "mytaku_use")
        for r in rows.get(ds, [])
        for f in ("service_day", "month")
        if r.get(f)
    ]
    return (min(days), max(days)) if days else None


def _write(folder: Path, name: str, data: bytes) -> tuple[int, str]:
    (folder / name).write_bytes(data)
    return len(data), hashlib.sha256(data).hexdigest()


def write_files(
    folder: Path,
    rows: Mapping[str, list[Record]],
    geo: Mapping[str, list[tuple[Any, Any]]],
    opts: ReleaseOptions,
    step: Step,
) -> list[catalogue.FileInfo]:
    """Data files and data dictionaries, each validated against its schema as written."""
    files = []
    for ds in DATASETS:
        step(ds.id)
        if ds.fmt == "zip":
            size, digest = _write(folder, ds.filename, default_gtfs().read_bytes())
            files.append(catalogue.FileInfo(ds, size, digest, None, 0))
            continue
        schema = formats.table_schema(ds, opts.lang)
        _write(folder, f"{ds.id}.schema.json", _json(schema))
        if ds.fmt == "csv":
            text = formats.to_csv(ds, rows[ds.id], opts.lang)
            problems = formats.validate_csv(text, schema)
            count = len(rows[ds.id])
            data = text.encode("utf-8")
        else:
            doc = formats.feature_collection(ds, geo[ds.id], opts.lang)
            problems = formats.validate_geojson(doc, schema)
            count = len(doc["features"])
            data = _json(doc)
        if problems:
            raise export.ExportError(f"{ds.filename}: {problems[:3]}")
        size, digest = _write(folder, ds.filename, data)
        files.append(catalogue.FileInfo(ds, size, digest, f"{ds.id}.schema.json", count))
    return files


def _json(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, indent=1, default=str).encode("utf-8")


def release_id(now: datetime) -> str:
    """Sortable, URL-safe release identifier (UTC)."""
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def publish(conn: psycopg.Connection, opts: ReleaseOptions, step: Step = lambda _: None) -> Release:
    """Write a release folder and record it; the connection must be mebuku_opendata's."""
    export.check_role(conn)
    now = opts.now or datetime.now(UTC)
    rid = release_id(now)
    step("read")
    views = export.read_views(conn)
    history = export.read_history(conn)
    rows, prot = build_rows(views, history, opts)
    final = opts.out_dir / RELEASES / rid
    tmp = opts.out_dir / RELEASES / f".{rid}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files = write_files(tmp, rows, geo_features(views), opts, step)
    base = f"{opts.base_url}{RELEASES}/{rid}/"
    links = [(t, opts.api_url + path, media) for t, path, media in GTFS_RT_LINKS]
    info = catalogue.ReleaseInfo(rid, base, now.date(), _period(rows), opts.k, opts.epsilon, links)
    step("catalogue")
    text = catalogue.to_jsonld(catalogue.build(files, info))
    problems = catalogue.validate(text)
    if problems:
        raise export.ExportError(f"catalogue: {problems[:3]}")
    (tmp / "catalog.jsonld").write_text(text, encoding="utf-8")
    meta = _metadata(rid, now, opts, files, prot)
    (tmp / "metadata.json").write_bytes(_json(meta))
    step("record")
    _record(conn, rid, now, opts, meta, prot)
    tmp.replace(final)
    pointer = opts.out_dir / f".{LATEST}.tmp"
    pointer.write_text(rid + "\n", encoding="utf-8")
    pointer.replace(opts.out_dir / LATEST)
    return Release(rid, final, files, meta)


def _metadata(
    rid: str,
    now: datetime,
    opts: ReleaseOptions,
    files: list[catalogue.FileInfo],
    prot: Mapping[str, Protection],
) -> dict[str, Any]:
    spends = [s for p in prot.values() for s in p.spends]
    return {
        "release_id": rid,
        "created_at": now.isoformat(),
        "license": str(catalogue.LICENSE),
        "k": opts.k,
        "privacy_loss": {
            "epsilon_budget": opts.epsilon,
            "epsilon_spent": round(sum(s.epsilon for s in spends), 9),
            "tables": [
                {
                    "table": s.table,
                    "epsilon": s.epsilon,
                    "scale": s.scale,
                    "mechanism": s.mechanism,
                    "sensitivity": s.sensitivity,
                }
                for s in spends
            ],
        },
        "suppression": {
            ds: {"cells": p.cells, "suppressed": p.suppressed} for ds, p in prot.items()
        },
        "files": [
            {
                "dataset": f.dataset.id,
                "file": f.dataset.filename,
                "bytes": f.byte_size,
                "sha256": f.sha256,
                "rows": f.rows,
                "schema": f.schema_file,
            }
            for f in files
        ],
    }


def _record(
    conn: psycopg.Connection,
    rid: str,
    now: datetime,
    opts: ReleaseOptions,
    meta: Mapping[str, Any],
    prot: Mapping[str, Protection],
) -> None:
    spent = float(meta["privacy_loss"]["epsilon_spent"])
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "INSERT INTO opendata_releases (release_id, created_at, k, epsilon, metadata)"
            " VALUES (%s, %s, %s, %s, %s)",
            [rid, now, opts.k, spent, json.dumps(meta, default=str)],
        )
        cur.executemany(
            "INSERT INTO opendata_release_cells (release_id, dataset, cell_key, value, suppressed)"
            " VALUES (%s, %s, %s, %s, %s)",
            [(rid, *row) for p in prot.values() for row in p.new_history],
        )


def latest(out_dir: Path) -> str | None:
    """The id of the latest complete release in ``out_dir``, if any."""
    try:
        rid = (out_dir / LATEST).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return rid if (out_dir / RELEASES / rid).is_dir() else None


def dataset_of(name: str) -> Dataset | None:
    """The dataset a file name belongs to."""
    for ds in DATASETS:
        if name in (ds.filename, f"{ds.id}.schema.json"):
            return ds
    return None
