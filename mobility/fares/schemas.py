"""Request and response bodies of the fares API (pydantic, with examples for OpenAPI).

Responses are built from the domain's own objects with
``Model.model_validate(obj, from_attributes=True)``; where a field has another name in
the domain (``Card.masked`` is ``card``) a validation alias says so. Role-dependent
redaction (operators see neither the rule that decided nor flags about other records)
is applied when the caller passes ``context={"staff": bool}``; without a context the
values are kept as they are, so validating an already built response changes nothing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mobility.fares import cards
from mobility.fares.plausibility import OPERATOR_FLAGS
from mobility.fares.rules import FACT_KINDS, LICENCE_VALUES

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
TEXT_PATTERN = r"^[^\x00-\x1f]*$"  # printable text: no NUL or control characters
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def sane_time(v: datetime) -> datetime:
    """Aware and within 2000-2099, so Japan-time arithmetic cannot overflow."""
    if v.tzinfo is None:
        raise ValueError("give a time zone offset (e.g. +09:00)")
    if not EARLIEST <= v < LATEST:
        raise ValueError("time must be between 2000 and 2099")
    return v


def _staff(info: ValidationInfo) -> bool | None:
    """``context["staff"]``, or None when the caller gave no redaction context."""
    ctx = info.context
    return bool(ctx["staff"]) if isinstance(ctx, dict) and "staff" in ctx else None


def _operator_visible(flags: list[str], info: ValidationInfo) -> list[str]:
    """Operators see flags about their own record only, not what other records revealed."""
    if _staff(info) is False:
        return [f for f in flags if f in OPERATOR_FLAGS]
    return flags


def _staff_only(value: str | None, info: ValidationInfo) -> str | None:
    """A value only city staff may see: None for operators."""
    return None if _staff(info) is False else value


# ---------------------------------------------------------------- identity


class Challenge(BaseModel):
    nonce: str = Field(description="base64url; sign these bytes with the card (RSA-SHA256)")
    expires_at: datetime


class SignIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "nonce": "q3cH...",
                    "certificate": "-----BEGIN CERTIFICATE-----\n...",
                    "signature": "base64url of the PKCS#1 v1.5 SHA-256 signature",
                }
            ]
        }
    )
    nonce: str = Field(max_length=100)
    certificate: str = Field(max_length=20_000, description="PEM or base64 DER")
    signature: str = Field(max_length=2_000, description="base64url")


class Renewal(SignIn):
    new_certificate: str = Field(max_length=20_000)
    new_signature: str = Field(max_length=2_000, description="the new card's signature")


class Session(BaseModel):
    token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_at: datetime
    enrolled: bool = Field(description="True when this sign-in created the resident record")


# ---------------------------------------------------------------- residents


class SubsidyOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "policy_version": "mytaku-2022-04",
                    "fiscal_year": 2026,
                    "eligible_as": "age-75+",
                    "rides_today": 1,
                    "rides_left_today": 1,
                    "rides_this_year": 12,
                    "rides_left_this_year": 58,
                    "subsidy_yen_this_year": 9800,
                    "bus_discount_yen_this_year": 120,
                }
            ]
        }
    )
    policy_version: str
    fiscal_year: int
    eligible_as: str | None = Field(description="the condition that qualifies; null: none")
    rides_today: int
    rides_left_today: int
    rides_this_year: int
    rides_left_this_year: int
    subsidy_yen_this_year: int
    bus_discount_yen_this_year: int


class MeOut(BaseModel):
    resident_id: int = Field(description="my resident number, to show city staff at the counter")


class RideOut(BaseModel):
    entry_id: int
    source: str
    kind: str
    amount_yen: int
    ride_at: datetime
    policy_version: str
    reverses: int | None


class CardOut(BaseModel):
    card_id: int
    card: str = Field(
        validation_alias=AliasChoices("card", "masked"),
        description="masked: only the last 4 hex digits",
        examples=["****0A1F"],
    )
    status: str
    linked_at: datetime
    ended_at: datetime | None


class CardIn(BaseModel):
    idm: str = Field(description="FeliCa IDm, 16 hex digits", examples=["01 2E 4C D8 A1 B2 0A 1F"])

    @field_validator("idm")
    @classmethod
    def _idm(cls, v: str) -> str:
        return cards.normalise_idm(v)


class QuoteIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"kind": "taxi", "meter_fare_yen": 2400, "registrants": 1},
                {
                    "kind": "bus",
                    "operator_id": "gunmachuo",
                    "route_id": "新前橋駅西口線_A",
                    "origin_stop_id": "g033_01",
                    "destination_stop_id": "m003_02",
                },
            ]
        }
    )
    kind: Literal["taxi", "bus"]
    at: datetime | None = Field(None, description="when (default now); picks the policy")
    meter_fare_yen: int | None = Field(None, ge=0, le=1_000_000)
    registrants: int = Field(1, ge=1, le=9, description="MyTaku registrants riding together")
    operator_id: str | None = Field(None, pattern=ID_PATTERN)
    route_id: str | None = Field(None, max_length=200, pattern=TEXT_PATTERN)
    origin_stop_id: str | None = Field(None, max_length=200, pattern=TEXT_PATTERN)
    destination_stop_id: str | None = Field(None, max_length=200, pattern=TEXT_PATTERN)

    @field_validator("at")
    @classmethod
    def _at(cls, v: datetime | None) -> datetime | None:
        return None if v is None else sane_time(v)

    @model_validator(mode="after")
    def _fields(self) -> QuoteIn:
        if self.kind == "taxi" and self.meter_fare_yen is None:
            raise ValueError("a taxi quote needs meter_fare_yen")
        if self.kind == "bus" and not (
            self.operator_id and self.route_id and self.origin_stop_id and self.destination_stop_id
        ):
            raise ValueError("a bus quote needs operator_id, route_id and both stop ids")
        return self


class QuoteOut(BaseModel):
    kind: str
    policy_version: str
    fare_yen: int
    subsidy_yen: int = Field(description="my subsidy (taxi) or discount (bus)")
    pay_yen: int = Field(description="what I pay (taxi: my share of the fare split evenly)")
    reason: str


# ---------------------------------------------------------------- operators


class Place(BaseModel):
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)


class TaxiRideIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "record_id": "T-2026-000123",
                    "vehicle_id": "maebashi-taxi-17",
                    "pickup_at": "2026-11-20T10:05:00+09:00",
                    "dropoff_at": "2026-11-20T10:21:00+09:00",
                    "pickup": {"lon": 139.0729, "lat": 36.3837},
                    "dropoff": {"lon": 139.0745, "lat": 36.3922},
                    "meter_fare_yen": 1800,
                    "rider_cards": ["012E4CD8A1B20A1F"],
                }
            ]
        }
    )
    record_id: str = Field(pattern=ID_PATTERN)
    vehicle_id: str = Field(pattern=ID_PATTERN)
    pickup_at: datetime
    dropoff_at: datetime
    pickup: Place
    dropoff: Place
    meter_fare_yen: int = Field(ge=0, le=1_000_000)
    rider_cards: list[str] = Field(min_length=1, max_length=9, description="IDm of each rider")

    @field_validator("pickup_at", "dropoff_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return sane_time(v)

    @field_validator("rider_cards")
    @classmethod
    def _cards(cls, v: list[str]) -> list[str]:
        return [cards.normalise_idm(x) for x in v]

    @model_validator(mode="after")
    def _order(self) -> TaxiRideIn:
        if self.dropoff_at < self.pickup_at:
            raise ValueError("dropoff_at is before pickup_at")
        return self


# From ledger.RiderOutcome: its public_reason is the reason everyone sees, its reason the
# staff-only detail_reason.
class RiderOut(BaseModel):
    position: int
    card: str = Field(description="masked: only the last 4 hex digits")
    subsidy_yen: int
    status: Literal["subsidised", "not-subsidised"]
    reason: str = Field(
        validation_alias=AliasChoices("public_reason", "reason"),
        description="subsidised, outside-hours, outside-city, flagged-for-review or"
        " not-subsidised: nothing about the card's holder or other residents' cards",
    )
    detail_reason: str | None = Field(
        None,
        validation_alias=AliasChoices("detail_reason", "reason"),
        description="city staff only: the rule that decided (null for operators)",
    )

    _detail = field_validator("detail_reason")(_staff_only)


class TaxiRideOut(BaseModel):
    record_id: str
    policy_version: str
    flags: list[str] = Field(
        description="plausibility flags for review (operators see those about the ride itself)"
    )
    subsidy_yen: int
    riders: list[RiderOut]
    duplicate: bool = Field(description="True: this record id was already submitted")

    _flags = field_validator("flags")(_operator_visible)


class BusTapIn(BaseModel):
    record_id: str = Field(pattern=ID_PATTERN, examples=["B-2026-000123"])
    # Ids of the bundled feed (群馬中央バス 新前橋駅西口線: 表町 -> 中央前橋駅前, 100 yen).
    route_id: str = Field(max_length=200, pattern=TEXT_PATTERN, examples=["新前橋駅西口線_A"])
    origin_stop_id: str = Field(max_length=200, pattern=TEXT_PATTERN, examples=["g033_01"])
    destination_stop_id: str = Field(max_length=200, pattern=TEXT_PATTERN, examples=["m003_02"])
    tap_on_at: datetime
    tap_off_at: datetime
    card: str = Field(description="IDm, 16 hex digits", examples=["012E4CD8A1B20A1F"])

    @field_validator("tap_on_at", "tap_off_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return sane_time(v)

    @field_validator("card")
    @classmethod
    def _card(cls, v: str) -> str:
        return cards.normalise_idm(v)


class BusTapOut(BaseModel):
    record_id: str
    policy_version: str
    fare_yen: int
    discount_yen: int
    status: Literal["subsidised", "not-subsidised"] = Field(
        validation_alias=AliasChoices("status", "public_reason")
    )
    discount: str | None = Field(
        description="city staff only: which discount applied (null for operators)"
    )
    pay_yen: int
    flags: list[str]
    duplicate: bool

    _discount = field_validator("discount")(_staff_only)
    _flags = field_validator("flags")(_operator_visible)


class ReversalIn(BaseModel):
    note: str = Field(min_length=1, max_length=500, examples=["meter fare keyed wrongly"])


# ---------------------------------------------------------------- city staff


class FactIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"kind": "birth_date", "value": "1948-05-01"},
                {"kind": "driving_licence", "value": "surrendered", "valid_from": "2024-03-01"},
                {
                    "kind": "pregnancy",
                    "value": "yes",
                    "valid_from": "2026-05-01",
                    "valid_to": "2027-06-30",
                },
            ]
        }
    )
    kind: str = Field(
        description="birth_date, driving_licence, disability, care_certification,"
        " intractable_disease, pregnancy, vehicle_support_subsidy"
    )
    value: str = Field(max_length=20, pattern=TEXT_PATTERN)
    valid_from: date | None = None
    valid_to: date | None = None
    note: str = Field("", max_length=500, pattern=TEXT_PATTERN, description="why (audit trail)")

    @model_validator(mode="after")
    def _check(self) -> FactIn:
        if self.kind not in FACT_KINDS:
            raise ValueError(f"kind must be one of {sorted(FACT_KINDS)}")
        if self.kind == "birth_date":
            date.fromisoformat(self.value)
        elif self.kind == "driving_licence":
            if self.value not in LICENCE_VALUES:
                raise ValueError(f"driving_licence is one of {sorted(LICENCE_VALUES)}")
        elif self.value not in ("yes", "no"):
            raise ValueError(f"{self.kind} is yes or no")
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self


class FactOut(BaseModel):
    fact_id: int
    kind: str
    value: str
    valid_from: date | None
    valid_to: date | None
    recorded_by: str
    recorded_at: datetime
    note: str


class CertLookupIn(BaseModel):
    certificate: str = Field(max_length=20_000, description="PEM or base64 DER")


class StaffCertIn(BaseModel):
    certificate: str = Field(max_length=20_000, description="the renewed card's certificate")
    note: str = Field("", max_length=500, pattern=TEXT_PATTERN)


class CardDisputeIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "idm": "012E4CD8A1B20A1F",
                    "action": "reassign",
                    "resident_id": 42,
                    "reason": "holder showed the card and My Number Card at the counter",
                }
            ]
        }
    )
    idm: str = Field(description="FeliCa IDm read from the card at the counter, 16 hex digits")
    action: Literal["reassign", "unlink"]
    resident_id: int | None = Field(
        None, ge=1, le=2**62, description="reassign: the resident the card goes to"
    )
    reason: str = Field(min_length=1, max_length=500, pattern=TEXT_PATTERN)

    @field_validator("idm")
    @classmethod
    def _idm(cls, v: str) -> str:
        return cards.normalise_idm(v)

    @model_validator(mode="after")
    def _target(self) -> CardDisputeIn:
        if (self.action == "reassign") != (self.resident_id is not None):
            raise ValueError("resident_id is required for reassign and only for reassign")
        return self


class CardDisputeOut(BaseModel):
    audit_id: int
    action: str
    ended_card_id: int | None
    from_resident: int | None
    new_card_id: int | None
    to_resident: int | None


def staff_view(staff: bool) -> dict[str, Any]:
    """The validation context that redacts operator views (``staff=False``)."""
    return {"staff": staff}
