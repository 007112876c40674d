"""The one settings object. Every key, secret and address comes from the environment.

Variables use the prefix ``MEBUKU_`` (for example ``MEBUKU_DATABASE_URL``); a ``.env`` file
in the working directory is read too. Nothing here has a secret default: the pseudonym key
must be given (``mebuku demo`` generates one into its private state folder).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator
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

    # Ingest worker robustness (issue 10, task i10-worker): payload bound, poison
    # budget, stall detection. The broker's max_packet_size follows the same payload bound.
    ingest_max_payload_bytes: int = Field(
        default=262_144,
        ge=1024,
        description="Largest MQTT payload ingested; larger ones are dead-lettered unparsed",
    )
    ingest_poison_retries: int = Field(
        default=5,
        ge=1,
        description="Failed attempts of one batch, while the database answers, before "
        "the batch is split to find and dead-letter the message that breaks it",
    )
    ingest_stall_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Messages waiting and nothing committed this long (database up) = stalled",
    )

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
