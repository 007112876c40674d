"""Seed for the EBPM dashboard's panels: the simulated city of tests/support/opendata_city
over the last three days (towns, residents, MyTaku rides, buses, a 5G trial, a budget)."""

from __future__ import annotations

from tests.support.opendata_city import default_plan, seed_city


def seed(url: str) -> None:
    seed_city(url, default_plan())
