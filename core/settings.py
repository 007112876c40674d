"""The one settings object. Every key, secret and address comes from the environment.

Variables use the prefix ``MEBUKU_`` (for example ``MEBUKU_DATABASE_URL``); a ``.env`` file
in the working directory is read too. Nothing here has a secret default: the pseudonym key
must be given (``mebuku demo`` generates one into its private state folder).
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import ip_network
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class MqttAddress(BaseModel):
    """A parsed ``mqtt://[user:pass@]host:port`` (or ``mqtts://``) address."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_mqtt_url(url: str) -> MqttAddress:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"MQTT URL has no host: {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    return MqttAddress(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MEBUKU_", env_file=".env", extra="ignore", frozen=True
    )

    # Connections. None means "not configured": `mebuku demo` then starts private servers.
    database_url: str | None = Field(
        default=None, description="PostgreSQL/TimescaleDB URL, e.g. postgresql://mebuku@db/mebuku"
    )
    mqtt_url: str | None = Field(default=None, description="mqtt://[user:pass@]host:port")
    pseudonym_key: SecretStr | None = Field(
        default=None, description="Secret for keyed hashes of personal identifiers (>= 32 chars)"
    )

    # Logging.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "text"

    # Storage.
    timescale: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="auto: use TimescaleDB when the extension is available; on: require it",
    )
    retention_days: int = Field(default=400, ge=0, description="Raw time-series kept; 0 = forever")
    compress_after_days: int = Field(default=7, ge=0, description="0 disables compression")

    # Local state (embedded servers, generated secrets) for `mebuku demo`.
    state_dir: Path = Field(default=Path(".mebuku"))

    # Embedded PostgreSQL's binaries (issue 10 item 5, i10-timescale). Read from the
    # environment by core.embedded.find_pg_bindir; TimescaleDB is preloaded when that
    # PostgreSQL has it installed.
    pg_bindir: Path | None = Field(
        default=None,
        description="bin folder of the PostgreSQL that `mebuku demo` and tests start; "
        "none: discovered (PATH, pg_config, /usr/lib/postgresql/*/bin)",
    )

    # Data.
    gtfs_path: Path | None = Field(default=None, description="GTFS-JP zip to import at demo start")
    road_graph_path: Path | None = Field(
        default=None, description="OSM XML or GraphML road network; none: built from GTFS shapes"
    )

    # Services.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_cors_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed by CORS, JSON list; empty (default): CORS off",
    )
    api_max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body the API accepts"
    )
    metrics_port: int = Field(default=9108, description="Prometheus port of the ingest worker")

    # Identity (mobility.fares): JPKI user-authentication trust anchors and revocation list.
    jpki_trust_anchors: Path | None = Field(
        default=None, description="PEM bundle of the CA certificates My Number Card certs chain to"
    )
    jpki_crl: Path | None = Field(
        default=None, description="CRL (PEM or DER) of that CA; refreshed by replacing the file"
    )

    # Transport (issue 11, item 6): which peers may tell the API the client's address.
    api_trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Reverse proxies (addresses or CIDRs, JSON list) whose X-Forwarded-For "
        "is believed; empty (default): X-Forwarded-For is ignored",
    )

    @field_validator("api_trusted_proxies")
    @classmethod
    def _check_proxies(cls, v: list[str]) -> list[str]:
        for entry in v:
            try:
                ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR") from None
        return [e.strip() for e in v]

    # Local-5G trials (#13): a verdict needs this share of the measured period with data.
    fiveg_min_coverage_pct: float = Field(
        default=80.0,
        ge=0,
        le=100,
        description="Below this data coverage a trial's verdict is 'insufficient data'",
    )

    # #14 languages (i14-report): the CLI's and reports' language when not asked per call.
    lang: Literal["ja", "en"] | None = Field(
        default=None,
        description="ja or en; default: the locale (LC_ALL, LC_MESSAGES, LANG), else ja",
    )

    # #10 ingest limits (issue 10, i10-input: what the ingestor accepts, reject retention).
    ingest_max_payload_bytes: int = Field(
        default=262144,
        ge=1024,
        description="Largest MQTT payload: the broker's max_packet_size is this plus headroom",
    )
    ingest_max_future_skew_seconds: int = Field(
        default=300, ge=0, description="How far ahead of the ingestor's clock a reading may be"
    )
    reject_retention_days: int = Field(
        default=30, ge=0, description="ingest_rejects rows kept; 0 = forever"
    )

    # Fares (issue 11, money that stays settled): how long after a pickup or tap-on an
    # operator may submit the record (older records are refused with 422).
    fares_submission_window_days: int = Field(
        default=14, ge=1, le=3660, description="Days after pickup/tap-on a record is accepted"
    )

    # Database roles (issue 11, item 1, core/roles/grants.toml): passwords that
    # `mebuku db migrate` and `mebuku db roles` set for the service roles. Unset: the
    # role's password is left as it is (none at first: fine for the embedded server,
    # which trusts localhost). Each service logs in with its own MEBUKU_DATABASE_URL.
    db_ingest_password: SecretStr | None = None
    db_mobility_password: SecretStr | None = None
    db_api_password: SecretStr | None = None
    db_settle_password: SecretStr | None = None
    db_maintain_password: SecretStr | None = None
    db_grafana_password: SecretStr | None = None

    # issue 11 (i11-screen): card sign-in fails closed. A CRL is required unless this
    # development-only switch is on; MEBUKU_ENVIRONMENT says where the platform runs.
    environment: Literal["production", "development"] = Field(
        default="production", description="development allows unsafe test switches"
    )
    jpki_allow_no_crl: bool = Field(
        default=False,
        description="development only: card sign-in without a CRL (no revocation check)",
    )

    @model_validator(mode="after")
    def _check_dev_switches(self) -> Settings:
        if self.jpki_allow_no_crl and self.environment != "development":
            raise ValueError(
                "MEBUKU_JPKI_ALLOW_NO_CRL=true is refused unless MEBUKU_ENVIRONMENT=development"
            )
        return self

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt(cls, v: str | None) -> str | None:
        if v is not None:
            parse_mqtt_url(v)
        return v

    @field_validator("pseudonym_key")
    @classmethod
    def _check_key(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 32:
            raise ValueError("MEBUKU_PSEUDONYM_KEY must be at least 32 characters")
        return v

    @property
    def mqtt(self) -> MqttAddress:
        if self.mqtt_url is None:
            raise RuntimeError("MEBUKU_MQTT_URL is not set (or run `mebuku demo`)")
        return parse_mqtt_url(self.mqtt_url)

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise RuntimeError(
                "MEBUKU_DATABASE_URL is not set (e.g. postgresql://user@host:5432/mebuku), "
                "or run `mebuku demo` to start a private database"
            )
        return self.database_url

    def require_pseudonym_key(self) -> bytes:
        if self.pseudonym_key is None:
            raise RuntimeError("MEBUKU_PSEUDONYM_KEY is not set (a secret of >= 32 characters)")
        return self.pseudonym_key.get_secret_value().encode()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
