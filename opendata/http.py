"""`/open/...`: the latest open-data release and its catalogue (filled in below)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
