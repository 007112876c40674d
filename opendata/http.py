"""`/open/...`: the latest open-data release and its catalogue, for anyone.

No authentication, CORS open, ETag + Cache-Control, a rate limit per client address. The
routes read files of the release folder (MEBUKU_OPENDATA_DIR) and nothing else: they
take no database connection at all, so nothing under /open can reach a table. File names
are checked against the dataset list before any path is built.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from core.i18n import gettext, negotiate
from core.web import ProblemError, public, rate_limit
from opendata.datasets import DATASETS
from opendata.landing import render_index
from opendata.release import LATEST, RELEASES, latest

open_rate_limit = rate_limit("open", capacity=120, per_seconds=60.0)
router = APIRouter(tags=["open data"], dependencies=[Depends(public), Depends(open_rate_limit)])

RELEASE_ID = r"^\d{8}T\d{6}Z$"
FILES: dict[str, str] = {
    "catalog.jsonld": "application/ld+json",
    "metadata.json": "application/json",
    **{ds.filename: ds.media_type for ds in DATASETS},
    **{f"{ds.id}.schema.json": "application/json" for ds in DATASETS if ds.fmt != "zip"},
}
LATEST_CACHE = "public, max-age=300"
RELEASE_CACHE = "public, max-age=31536000, immutable"
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file (CSV, GeoJSON, JSON, JSON-LD, zip; /open/ also as HTML)",
        "content": {m: {} for m in sorted({*FILES.values(), "text/html"})},
    },
    304: {"description": "Not modified (If-None-Match matched the ETag)"},
    404: {"description": "No such release or file"},
    429: {"description": "Too many requests"},
}


def _folder(request: Request) -> Path:
    folder: Path | None = request.app.state.settings.opendata_dir
    lang = negotiate(request.headers.get("accept-language"))
    if folder is None or latest(folder) is None:
        raise ProblemError(
            404,
            "no-release",
            gettext("No open-data release yet", lang),
            gettext("Nothing has been published yet: run mebuku opendata publish.", lang),
        )
    return folder


def _not_found(request: Request) -> ProblemError:
    lang = negotiate(request.headers.get("accept-language"))
    return ProblemError(404, "not-found", gettext("Not found", lang))


async def _serve(request: Request, path: Path, name: str, cache: str) -> Response:
    if name not in FILES:
        raise _not_found(request)
    try:
        data = await anyio.Path(path).read_bytes()
    except OSError:
        raise _not_found(request) from None
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {
        "ETag": etag,
        "Cache-Control": cache,
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": "ETag",
        "X-Content-Type-Options": "nosniff",
    }
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    media = FILES[name]
    if media.startswith("text/") or media.endswith("json"):
        media += "; charset=utf-8"
    return Response(data, media_type=media, headers=headers)


FileName = Annotated[str, PathParam(max_length=80, pattern=r"^[a-z0-9_.]+$")]


@router.get("/open/catalog.jsonld", responses=_RESPONSES, summary="DCAT catalogue (latest)")
async def open_catalogue(request: Request) -> Response:
    """The latest release's DCAT catalogue (JSON-LD)."""
    return await open_latest_file(request, "catalog.jsonld")


@router.get("/open/latest/{name}", responses=_RESPONSES, summary="A file of the latest release")
async def open_latest_file(request: Request, name: FileName) -> Response:
    """A data file, data dictionary or metadata of the latest release."""
    folder = _folder(request)
    rid = latest(folder)
    return await _serve(request, folder / RELEASES / str(rid) / name, name, LATEST_CACHE)


@router.get(
    "/open/releases/{release_id}/{name}", responses=_RESPONSES, summary="A file of a release"
)
async def open_release_file(
    request: Request,
    release_id: Annotated[str, PathParam(pattern=RELEASE_ID)],
    name: FileName,
) -> Response:
    """A file of one release (releases never change: cached for a year)."""
    folder = _folder(request)
    if not re.match(RELEASE_ID, release_id):
        raise _not_found(request)
    return await _serve(request, folder / RELEASES / release_id / name, name, RELEASE_CACHE)


@router.get("/open/", responses=_RESPONSES, summary="Open data index")
async def open_index(request: Request) -> Response:
    """The latest release: a page for people (Accept: text/html, in the reader's language)
    or its metadata (files, suppression, privacy loss) as JSON."""
    response = await open_latest_file(request, "metadata.json")
    if "text/html" not in request.headers.get("accept", "") or response.status_code != 200:
        return response
    lang = negotiate(request.headers.get("accept-language"))
    page = render_index(json.loads(bytes(response.body)), lang).encode("utf-8")
    skip = ("content-length", "content-type")
    headers = {k: v for k, v in response.headers.items() if k.lower() not in skip}
    headers["ETag"] = '"' + hashlib.sha256(page).hexdigest()[:32] + '"'
    headers["Vary"] = "Accept, Accept-Language"
    return Response(page, media_type="text/html; charset=utf-8", headers=headers)


__all__ = ["LATEST", "router"]
