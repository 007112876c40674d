"""The operators registry: one identity per operator, aliases resolve to it."""

from __future__ import annotations

import pytest

from core.operators import canonical_operator_id, feed_agency_id, parse_registry, registry


def test_corporate_number_and_agency_id_are_aliases_of_one_operator() -> None:
    assert canonical_operator_id("gunmachuo") == "gunmachuo"
    assert canonical_operator_id("7070001000969") == "gunmachuo"
    assert feed_agency_id("gunmachuo") == "7070001000969"
    op = registry().get("7070001000969")
    assert op is not None and op.legal_name == "群馬中央バス株式会社" and op.kind == "bus"
    assert canonical_operator_id("someone-else") == "someone-else"  # unknown: unchanged
    assert registry().get("demo-taxi") is not None


def test_a_name_of_two_operators_is_refused() -> None:
    doc = {
        "operators": [
            {"id": "a-bus", "legal_name": "A", "kind": "bus", "corporate_number": "1234567890123"},
            {"id": "b-bus", "legal_name": "B", "kind": "bus", "gtfs_agency_ids": ["1234567890123"]},
        ]
    }
    with pytest.raises(ValueError, match="names both"):
        parse_registry(doc)
    with pytest.raises(ValueError, match="13 digits"):
        parse_registry(
            {
                "operators": [
                    {"id": "cc", "legal_name": "C", "kind": "bus", "corporate_number": "12"}
                ]
            }
        )
    with pytest.raises(ValueError, match="bus or taxi"):
        parse_registry({"operators": [{"id": "dd", "legal_name": "D", "kind": "tram"}]})
