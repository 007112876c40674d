"""The one settings object. Every key, secret and address comes from the environment.

Variables use the prefix ``MEBUKU_`` (for example ``MEBUKU_DATABASE_URL``); a ``.env`` file
in the working directory is read too. An empty variable counts as unset. Nothing here has a
secret default: the pseudonym key must be given (``mebuku demo`` generates one into its
private state folder).

Misconfiguration is a :class:`ConfigError`: one line per problem naming the variable to
set, in the language of the process (``core.i18n.process_lang``: Japanese unless
``MEBUKU_LANG``/the locale says English), with the variable's name verbatim. Commands
declare what they need with :meth:`Settings.require`; the ``mebuku`` root turns the
error into those lines and exit status 2 (no traceback). When the database, the broker or
the key is not set, :func:`get_settings` takes them from the env file a running ``mebuku
demo`` writes into its state folder (:data:`DEMO_ENV_FILE`).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from functools import lru_cache
from ipaddress import ip_network
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from core.i18n import N_, process_lang, validation_words
from core.i18n import cli_gettext as _

ENV_PREFIX = "MEBUKU_"
# Written by a running `mebuku demo` (mode 0600) so other commands find its private servers.
DEMO_ENV_FILE = "demo.env"
DEMO_ENV_FIELDS = ("database_url", "mqtt_url", "pseudonym_key")
# Values never echoed in an error line (they may hold passwords).
_SECRET_FIELDS = frozenset({"database_url", "mqtt_url", "pseudonym_key"})


class ConfigError(RuntimeError):
    """Settings that cannot work: one line per problem, each naming what to set."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def env_name(field: str) -> str:
    """The environment variable of a setting, for messages that tell people what to set."""
    return f"{ENV_PREFIX}{field.upper()}"


# What to set, per required setting (the line printed when it is missing).
_MISSING = {
    "database_url": N_(
        "{variable} is not set: set it to a PostgreSQL URL such as "
        "postgresql://user@host:5432/mebuku (or run `mebuku demo`)"
    ),
    "mqtt_url": N_(
        "{variable} is not set: set it to the broker's address such as mqtt://host:1883 "
        "(or run `mebuku demo`)"
    ),
    "pseudonym_key": N_(
        "{variable} is not set: set it to a secret of at least 32 characters (or run `mebuku demo`)"
    ),
}
_NOT_SET = N_("{variable} is not set")


class MqttAddress(BaseModel):
    """A parsed ``mqtt://[user:pass@]host:port`` (or ``mqtts://``) address."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_mqtt_url(url: str) -> MqttAddress:
    """Parse a broker address; errors never repeat the URL (it may hold a password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(_("must start with mqtt:// or mqtts:// (e.g. mqtt://host:1883)"))
    if not parts.hostname:
        raise ValueError(_("has no host (e.g. mqtt://host:1883)"))
    try:
        port = parts.port
    except ValueError:
        raise ValueError(_("has an invalid port (e.g. mqtt://host:1883)")) from None
    tls = parts.scheme in ("mqtts", "ssl")
    return MqttAddress(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


def check_database_url(url: str) -> None:
    """A libpq URL (postgresql://...) or key=value string that libpq can parse."""
    from psycopg import conninfo

    if "://" in url and not url.startswith(("postgresql://", "postgres://")):
        raise ValueError(
            _("must start with postgresql:// (e.g. postgresql://user@host:5432/mebuku)")
        )
    if "://" not in url and "=" not in url:
        raise ValueError(_("must be a PostgreSQL URL (e.g. postgresql://user@host:5432/mebuku)"))
    try:
        conninfo.conninfo_to_dict(url)
    except Exception:  # psycopg.ProgrammingError; its text may echo the URL
        raise ValueError(
            _("is not a valid PostgreSQL URL (e.g. postgresql://user@host:5432/mebuku)")
        ) from None


class Settings(BaseSettings):
    """Every setting from ``MEBUKU_*`` environment variables (or ``.env``), in one place, so a
    missing or bad one is reported with its variable name."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        extra="ignore",
        frozen=True,
        env_ignore_empty=True,  # an empty variable counts as unset
    )
    # Set by load_settings() when values came from a running demo's state folder.
    _demo_env: Path | None = PrivateAttr(default=None)

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
    prediction_window_days: int = Field(
        default=56,
        ge=1,
        le=3650,
        description="Arrival predictions learn from this many days of stop events; older "
        "learned observations are deleted",
    )

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
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_cors_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed by CORS, JSON list; empty (default): CORS off",
    )
    api_max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body the API accepts"
    )
    metrics_port: int = Field(
        default=9108, ge=0, le=65535, description="Prometheus port of the ingest worker"
    )

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
                raise ValueError(
                    _("{value} is not an IP address or CIDR").format(value=repr(entry))
                ) from None
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
    db_opendata_password: SecretStr | None = None

    # Open data (issue 16, opendata/): privacy threshold, noise budget, release folder, CKAN.
    opendata_k: int = Field(
        default=10,
        ge=2,
        le=1000,
        description="Smallest number of persons a published cell may describe",
    )
    opendata_epsilon: float = Field(
        default=0.0,
        ge=0,
        le=10,
        description="Privacy-loss budget per release for noisy resident counts; 0 = no noise",
    )
    opendata_dir: Path | None = Field(
        default=None, description="Folder of open-data releases (publish writes, /open serves)"
    )
    ckan_url: str | None = Field(default=None, description="CKAN portal to publish to (optional)")
    ckan_api_key: SecretStr | None = Field(default=None, description="CKAN API token")

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
                _("MEBUKU_JPKI_ALLOW_NO_CRL=true is refused unless MEBUKU_ENVIRONMENT=development")
            )
        return self

    # Issue 10 (supervised demo): every port the demo uses can be set. The demo takes a
    # free port instead when the usual one is busy and the variable is not set.
    mobility_metrics_port: int = Field(
        default=9109, ge=0, le=65535, description="Prometheus port of the mobility worker"
    )
    demo_postgres_port: int | None = Field(
        default=None, ge=1, le=65535, description="Port of the demo's private PostgreSQL"
    )
    demo_mqtt_port: int | None = Field(
        default=None, ge=1, le=65535, description="Port of the demo's private Mosquitto"
    )

    @field_validator("database_url")
    @classmethod
    def _check_database(cls, v: str | None) -> str | None:
        if v is not None:
            check_database_url(v)
        return v

    # Ingest worker robustness (issue 10, task i10-worker): payload bound, poison
    # budget, stall detection (the payload bound is MEBUKU_INGEST_MAX_PAYLOAD_BYTES above).
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

    # Issue 17 (resident portal): Web Push (RFC 8292 VAPID) for the portal's notices.
    portal_vapid_private_key: SecretStr | None = Field(
        default=None,
        description="VAPID private key (base64url raw P-256 or PEM; `mebuku portal vapid-key`)",
    )
    portal_vapid_subject: str = Field(
        default="mailto:kotsu-seisaku@city.maebashi.example",
        description="VAPID contact (mailto: or https:) the push services may write to",
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
            raise ValueError(_("must be at least 32 characters"))
        return v

    @property
    def demo_env_file(self) -> Path | None:
        """The running demo's env file these settings were completed from, if any."""
        return self._demo_env

    def require(self, *fields: str, files: Iterable[str] = ()) -> Settings:
        """Check, before any work starts, that ``fields`` are set and that those of the
        path settings named in ``files`` that are set name readable files. Raises one
        :class:`ConfigError` listing every problem; returns self for chaining."""
        problems = [
            _(_MISSING.get(f, _NOT_SET)).format(variable=env_name(f))
            for f in fields
            if getattr(self, f) is None
        ]
        for f in files:
            path: Path | None = getattr(self, f)
            if path is None:
                continue
            if not path.is_file():
                why = (
                    _("{variable}: {path} is not a file: set it to a readable file")
                    if path.exists()
                    else _("{variable}: {path} does not exist: set it to a readable file")
                )
            elif not os.access(path, os.R_OK):
                why = _("{variable}: {path} cannot be read: set it to a readable file")
            else:
                continue
            problems.append(why.format(variable=env_name(f), path=path))
        if problems:
            raise ConfigError(problems)
        return self

    @property
    def mqtt(self) -> MqttAddress:
        """The broker address; a missing ``MEBUKU_MQTT_URL`` is one clear line and exit 2."""
        self.require("mqtt_url")
        assert self.mqtt_url is not None
        return parse_mqtt_url(self.mqtt_url)

    def require_database_url(self) -> str:
        """The database URL; a missing ``MEBUKU_DATABASE_URL`` is one clear line and exit 2."""
        self.require("database_url")
        assert self.database_url is not None
        return self.database_url

    def require_pseudonym_key(self) -> bytes:
        """The pseudonym key; a missing ``MEBUKU_PSEUDONYM_KEY`` is one clear line and exit 2."""
        self.require("pseudonym_key")
        assert self.pseudonym_key is not None
        return self.pseudonym_key.get_secret_value().encode()


def _problems(e: ValidationError | SettingsError) -> list[str]:
    """One line per invalid variable, without echoing secrets, in the process language."""
    if isinstance(e, SettingsError):  # e.g. a list setting that is not valid JSON
        m = re.search(r'field "(\w+)"', str(e))
        name = env_name(m.group(1)) if m else _("a MEBUKU_ variable")
        return [
            _('{variable}: cannot be parsed: a list setting is JSON, e.g. ["a", "b"]').format(
                variable=name
            )
        ]
    lang = process_lang()
    lines = []
    for err in e.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        msg = validation_words(err, lang)
        if not field:
            lines.append(msg)
        elif field in _SECRET_FIELDS:
            lines.append(_("{variable}: {problem}").format(variable=env_name(field), problem=msg))
        else:
            lines.append(
                _("{variable}: {problem} (got {value})").format(
                    variable=env_name(field), problem=msg, value=repr(err.get("input"))
                )
            )
    return lines


def load_settings(*, demo_state: bool = True) -> Settings:
    """Settings from the environment (and ``.env``), validated; a :class:`ConfigError`
    when a value is invalid. With ``demo_state``, the connection settings left unset are
    taken from a running demo's env file in the state folder."""
    try:
        s = Settings()
    except (ValidationError, SettingsError) as e:
        raise ConfigError(_problems(e)) from None
    if not demo_state or all(getattr(s, f) is not None for f in DEMO_ENV_FIELDS):
        return s
    path = (s.state_dir / DEMO_ENV_FILE).absolute()
    values = read_demo_env(path)
    fill = {f: values.get(env_name(f)) for f in DEMO_ENV_FIELDS if getattr(s, f) is None}
    fill = {f: v for f, v in fill.items() if v}
    if not fill:
        return s
    try:
        filled = Settings(**fill)  # type: ignore[arg-type]
    except (ValidationError, SettingsError) as e:
        raise ConfigError([f"{path}: {p}" for p in _problems(e)]) from None
    filled._demo_env = path
    return filled


def read_demo_env(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of the demo's env file; empty unless the file is ours and
    private (someone else's file could point us at their servers)."""
    try:
        st = path.stat()
        if st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o077:
            return {}
        text = path.read_text()
    except OSError:
        return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith(ENV_PREFIX):
            values[key.strip()] = value.strip()
    return values


def write_demo_env(path: Path, values: dict[str, str]) -> None:
    """Write the demo's env file, readable by its owner only (it holds the key)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("# written by a running `mebuku demo`; removed when it stops\n")
        fh.writelines(f"{k}={v}\n" for k, v in values.items())
    tmp.replace(path)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings: the environment, then a running demo's state folder for
    the connection settings left unset."""
    return load_settings()
