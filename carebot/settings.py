"""Settings: the only module that reads the environment, ``.env`` and ``config/carebot.toml``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = [
    "CapSettings",
    "DispatchSettings",
    "HttpSettings",
    "Settings",
    "SmtpSettings",
    "TwilioSettings",
    "WatcherSettings",
    "WebhookSettings",
    "load_settings",
]

DEFAULT_CONFIG_FILE = Path("config/carebot.toml")


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, gt=0)


class TwilioSettings(BaseModel):
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    from_number: str | None = None
    # None means Twilio's own API; a test server's URL otherwise.
    base_url: str | None = None
    timeout_seconds: float = Field(default=15.0, gt=0)
    validity_period_seconds: int = Field(default=14_400, ge=1, le=36_000)
    concurrency: int = Field(default=8, ge=1)
    # Messages per second to Twilio from every carebot process on the database together
    # (your senders' MPS); None: no limit.
    rate_per_second: float | None = Field(default=None, gt=0)

    @property
    def configured(self) -> bool:
        return bool(self.account_sid and self.auth_token and self.from_number)


class SmtpSettings(BaseModel):
    host: str | None = None
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    sender: str | None = None
    starttls: bool = True
    timeout_seconds: float = Field(default=30.0, gt=0)
    concurrency: int = Field(default=4, ge=1)
    rate_per_second: float | None = Field(default=None, gt=0)

    @property
    def configured(self) -> bool:
        return bool(self.host and self.sender)


def _check_zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


class WebhookSettings(BaseModel):
    carebot_secret: SecretStr | None = None
    shopify_secret: SecretStr | None = None
    woocommerce_secret: SecretStr | None = None
    aftership_secret: SecretStr | None = None
    # The shop's own time zone, for WooCommerce dates sent without ``_gmt`` (REST v1);
    # None: CAREBOT_DEFAULT_TIMEZONE.
    woocommerce_timezone: str | None = None

    @field_validator("woocommerce_timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)


class DispatchSettings(BaseModel):
    tick_seconds: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=100, ge=1)
    claim_lease_seconds: float = Field(default=60.0, gt=0)
    send_lease_seconds: float = Field(default=120.0, gt=0)
    reaper_seconds: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=6, ge=1)
    backoff_base_seconds: float = Field(default=30.0, gt=0)
    backoff_max_seconds: float = Field(default=3600.0, gt=0)
    # A provider that failed this many times in a row is left alone for the cool-down.
    breaker_threshold: int = Field(default=5, ge=1)
    breaker_cooldown_seconds: float = Field(default=30.0, gt=0)
    # Finished notifications, events and rejected payloads older than this are deleted.
    retention_days: int = Field(default=180, ge=1)


class CapSettings(BaseModel):
    """Frequency caps: at most this many messages per customer address per rolling 24 hours."""

    sms_per_day: int = Field(default=3, ge=1)
    email_per_day: int = Field(default=5, ge=1)


class WatcherSettings(BaseModel):
    """The periodic scans for shipments in trouble."""

    # No carrier scan for this long and the parcel is stalled.
    stall_after_hours: float = Field(default=48.0, gt=0)
    # Per-carrier overrides by carrier name (any case, spaces ignored): {"SF Express": 24}.
    carrier_stall_hours: dict[str, float] = Field(default_factory=dict)
    # How often each watcher scans (the daemon's interval job, simulate's virtual tick).
    interval_minutes: float = Field(default=10.0, gt=0)

    @field_validator("carrier_stall_hours")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [name for name, hours in value.items() if hours <= 0]
        if bad:
            raise ValueError(f"stall hours must be positive (carriers: {', '.join(bad)})")
        return value


class AlertSettings(BaseModel):
    email: str | None = None


class Settings(BaseSettings):
    """Everything carebot reads from its environment, read once and handed down."""

    model_config = SettingsConfigDict(
        env_prefix="CAREBOT_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        toml_file=DEFAULT_CONFIG_FILE,
    )

    database_url: str = "sqlite:///carebot.db"
    rules_dir: Path = Path("rules")
    templates_dir: Path = Path("message_templates")
    public_url: str = "http://127.0.0.1:8080"
    admin_token: SecretStr | None = None
    shop_name: str = "carebot demo shop"
    default_timezone: str = "Asia/Shanghai"
    default_locale: str = "zh-CN"
    # The locale of a customer whose order names none, by shipping (else billing) country
    # (ISO 3166 alpha-2); "*" is every other country. No country at all: default_locale.
    country_locales: dict[str, str] = Field(
        default_factory=lambda: {
            "CN": "zh-CN",
            "HK": "zh-CN",
            "MO": "zh-CN",
            "TW": "zh-CN",
            "*": "en",
        }
    )
    quiet_hours: str = "21:00-09:00"
    # "text" (key=value, for a terminal) or "json" (one object per line, for a log collector).
    log_format: Literal["text", "json"] = "text"
    http: HttpSettings = Field(default_factory=HttpSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    watchers: WatcherSettings = Field(default_factory=WatcherSettings)
    caps: CapSettings = Field(default_factory=CapSettings)

    @property
    def admin_secret(self) -> str | None:
        """The admin token, or None when it is unset or empty (the admin routes are off)."""
        if self.admin_token is None:
            return None
        return self.admin_token.get_secret_value() or None

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("country_locales")
    @classmethod
    def _country_keys(cls, value: dict[str, str]) -> dict[str, str]:
        return {key.strip().upper(): locale.strip() for key, locale in value.items()}

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours_shape(cls, value: str) -> str:
        from carebot.rulebook.windows import parse_window

        if value.strip().lower() != "none":
            parse_window(value)
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, environment, .env, then config/carebot.toml.
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls),
            file_secret_settings,
        )


def load_settings(**overrides: object) -> Settings:
    """Read the settings once; ``overrides`` win over every source (for tests and the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
