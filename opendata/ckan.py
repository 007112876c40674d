"""Pushing a release to a CKAN portal through its Action API (ckanapi): one CKAN dataset
per published dataset (created, or patched when it exists) and a resource per release
file, linked to the file as served under /open (the portal catalogues; /open serves)."""

from __future__ import annotations

import re
from typing import Any

from core.extras import require
from core.i18n import gettext
from opendata.catalogue import PUBLISHER_NAME
from opendata.release import RELEASES, Release

ORGANIZATION = "maebashi-city"
LICENSE_ID = "cc-by"  # CKAN's id for Creative Commons Attribution (4.0 in current CKAN)
_NAME = re.compile(r"^[a-z0-9_-]{2,100}$")


def package_name(dataset_id: str) -> str:
    """The CKAN name (URL slug) of a dataset: lowercase letters, digits, - and _."""
    name = "maebashi-" + dataset_id.replace("_", "-")
    if not _NAME.match(name):
        raise ValueError(f"not a valid CKAN name: {name}")
    return name


def package_payload(rel: Release, dataset_id: str) -> dict[str, Any]:
    """package_create/package_patch fields for one dataset of a release."""
    f = next(x for x in rel.files if x.dataset.id == dataset_id)
    ds = f.dataset
    return {
        "name": package_name(ds.id),
        "title": gettext(ds.title, "ja"),
        "notes": gettext(ds.description, "ja"),
        "owner_org": ORGANIZATION,
        "license_id": LICENSE_ID,
        "author": gettext(PUBLISHER_NAME, "ja"),
        "version": rel.release_id,
        "tags": [{"name": kw} for kw in ds.keywords],
        "extras": [
            {"key": "title_en", "value": gettext(ds.title, "en")},
            {"key": "k_threshold", "value": str(rel.metadata.get("k", ""))},
        ],
    }


def resource_payloads(rel: Release, dataset_id: str, base_url: str) -> list[dict[str, Any]]:
    """resource_create fields for a dataset's files (data and data dictionary)."""
    f = next(x for x in rel.files if x.dataset.id == dataset_id)
    ds = f.dataset
    folder = f"{base_url}{RELEASES}/{rel.release_id}/"
    out = [
        {
            "package_id": package_name(ds.id),
            "url": folder + ds.filename,
            "name": f"{gettext(ds.title, 'ja')} ({rel.release_id})",
            "format": ds.fmt.upper(),
            "mimetype": ds.media_type,
            "size": f.byte_size,
            "hash": "sha256:" + f.sha256,
        }
    ]
    if f.schema_file:
        out.append(
            {
                "package_id": package_name(ds.id),
                "url": folder + f.schema_file,
                "name": gettext("Data dictionary", "ja") + f" ({rel.release_id})",
                "format": "JSON",
                "mimetype": "application/json",
            }
        )
    return out


def push_release(rel: Release, url: str, api_key: str | None, base_url: str) -> int:
    """Create or update every dataset of ``rel`` on the portal; returns how many."""
    ckanapi = require("ckanapi", "opendata")
    portal = ckanapi.RemoteCKAN(url, apikey=api_key, user_agent="mebuku-opendata")
    n = 0
    for f in rel.files:
        payload = package_payload(rel, f.dataset.id)
        try:
            portal.action.package_show(id=payload["name"])
        except ckanapi.NotFound:
            portal.action.package_create(**payload)
        else:
            portal.action.package_patch(id=payload["name"], **payload)
        for res in resource_payloads(rel, f.dataset.id, base_url):
            portal.action.resource_create(**res)
        n += 1
    return n
