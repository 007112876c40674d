"""One credential system for every API test: the operators under their one id, and one
API key per role (plus resident sessions where a test needs them).

The operator is spelled as core/operators.toml spells it (``gunmachuo``), so a key made
here is the key a real operator would get; the other operator is deliberately not in the
registry, standing for any second operator whose data the first must never see.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from api.keys import create_api_key

OPERATOR = "gunmachuo"
OTHER_OPERATOR = "kanto-taxi"


@dataclass(frozen=True)
class Credentials:
    """API keys per role, and resident session tokens when the test issued them."""

    operator: str
    other_operator: str
    council: str
    admin: str
    resident_a: str = ""
    resident_b: str = ""

    def headers(self, who: str) -> dict[str, str]:
        """The request headers that present the credential named ``who``."""
        value = getattr(self, who)
        if who.startswith("resident"):
            return {"Authorization": f"Bearer {value}"}
        return {"X-API-Key": value}


def api_keys(db_url: str) -> Credentials:
    """A fresh key for each role: both operators, the council and an administrator."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        return Credentials(
            operator=create_api_key(conn, "operator", OPERATOR),
            other_operator=create_api_key(conn, "operator", OTHER_OPERATOR),
            council=create_api_key(conn, "council"),
            admin=create_api_key(conn, "admin"),
        )
