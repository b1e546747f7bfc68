"""Settings: the only module that reads the environment, ``.env`` and ``config/carebot.toml``."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from carebot.rulebook.windows import DailyWindow, parse_window

__all__ = [
    "AliyunSettings",
    "CapSettings",
    "DispatchSettings",
    "HttpSettings",
    "RenderSettings",
    "RulesSettings",
    "Settings",
    "SmsSettings",
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
    # Every request body (webhooks, callbacks, forms) is refused with 413 past this size.
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    # JSON nested deeper than this is refused with 400 (a platform's payload is ~6 deep).
    max_json_depth: int = Field(default=64, ge=2)
    # Dashboard forms (login, actions): at most this many fields, each at most this size;
    # file parts are refused.
    max_form_fields: int = Field(default=20, ge=1)
    max_form_part_bytes: int = Field(default=16_384, gt=0)
    # A request whose next piece of body does not arrive within this is cut off (408).
    read_timeout_seconds: float = Field(default=15.0, gt=0)
    # An idle keep-alive connection is closed after this.
    keep_alive_seconds: float = Field(default=5.0, gt=0)
    # Past this many open connections and requests in progress, new requests get 503.
    limit_concurrency: int = Field(default=1000, ge=1)


class RenderSettings(BaseModel):
    """Bounds on one message render (merchants' templates run in the sandbox)."""

    # A render still running after this fails its message ("render took longer than …").
    timeout_seconds: float = Field(default=2.0, gt=0)
    # A render producing more text than this fails its message.
    max_output_chars: int = Field(default=100_000, gt=0)
    # A string or list built by * or + in a template may not grow past this many items.
    max_sequence_items: int = Field(default=100_000, gt=0)


class RulesSettings(BaseModel):
    """Bounds on the rule files, checked before they are read."""

    # A rule file larger than this is refused.
    max_file_bytes: int = Field(default=1_048_576, gt=0)
    # Values built from a file's YAML, aliases expanded; a file past this is refused
    # (an alias bomb is a few hundred bytes that expand to billions).
    max_yaml_nodes: int = Field(default=100_000, gt=0)


class TwilioSettings(BaseModel):
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    from_number: str | None = None
    # None means Twilio's own API; a test server's URL otherwise.
    base_url: str | None = None
    timeout_seconds: float = Field(default=15.0, gt=0)
    validity_period_seconds: int = Field(default=14_400, ge=1, le=36_000)
    # Calls in flight per process (one aiohttp connection pool). Past about 64 one process is
    # CPU-bound (benchmarks/README.md, Burst); Twilio answers 429 to an account with too many
    # requests at once, which carebot retries after its Retry-After.
    concurrency: int = Field(default=64, ge=1)
    # Messages per second to Twilio from every carebot process on the database together
    # (your senders' MPS); None: no limit.
    rate_per_second: float | None = Field(default=None, gt=0)

    @property
    def configured(self) -> bool:
        return bool(self.account_sid and self.auth_token and self.from_number)


class SmsSettings(BaseModel):
    """Which provider carries the SMS channel (its own group holds its credentials)."""

    provider: Literal["twilio", "aliyun"] = "twilio"


class AliyunSettings(BaseModel):
    """Alibaba Cloud SMS (阿里云短信): an AccessKey, the approved signature, the endpoint."""

    access_key_id: str | None = None
    access_key_secret: SecretStr | None = None
    # The approved 短信签名, shown as 【…】 before every message.
    sign_name: str | None = None
    region_id: str = "cn-hangzhou"
    # Alibaba Cloud's own endpoint by default; host:port of a test server otherwise.
    endpoint: str = "dysmsapi.aliyuncs.com"
    protocol: Literal["https", "http"] = "https"
    timeout_seconds: float = Field(default=15.0, gt=0)
    concurrency: int = Field(default=8, ge=1)
    # Messages per second from every carebot process together; None: no limit.
    rate_per_second: float | None = Field(default=None, gt=0)
    # How long to wait after per-number flow control (isv.BUSINESS_LIMIT_CONTROL) before retrying.
    throttle_retry_seconds: float = Field(default=60.0, gt=0)
    # The secret path segment of the receipt and reply push URLs
    # (/aliyun/sms/report/{token}, /aliyun/sms/up/{token}); the routes refuse all without it.
    callback_token: SecretStr | None = None

    @property
    def configured(self) -> bool:
        return bool(self.access_key_id and self.access_key_secret and self.sign_name)


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
    # The salt given when subscribing a parcel at 快递100: a push is signed MD5(param + salt).
    kuaidi100_salt: SecretStr | None = None
    # The shop's own time zone, for WooCommerce dates sent without ``_gmt`` (REST v1);
    # None: CAREBOT_DEFAULT_TIMEZONE.
    woocommerce_timezone: str | None = None

    @field_validator("woocommerce_timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)


class DispatchSettings(BaseModel):
    tick_seconds: float = Field(default=1.0, gt=0)
    # Rows claimed at once. A batch is sent before the next is claimed, so it should be several
    # times the channels' concurrency; every row of it must be sent within claim_lease_seconds.
    batch_size: int = Field(default=300, ge=1)
    # Processes that send (``carebot run``): the daemon and processes-1 dispatch workers it
    # starts, watches and stops. Each claims from the same database, so a message is still
    # sent once; on a machine with several cores a burst goes out that much faster.
    processes: int = Field(default=1, ge=1, le=32)
    claim_lease_seconds: float = Field(default=60.0, gt=0)
    send_lease_seconds: float = Field(default=120.0, gt=0)
    reaper_seconds: float = Field(default=10.0, gt=0)
    # Attempts that may end in an unexpected error (or a sender dying mid-send) before a
    # message fails. Transient provider failures (timeouts, 5xx, 429, SMTP 4xx) do not count:
    # they are retried until the message's not_after.
    max_attempts: int = Field(default=6, ge=1)
    backoff_base_seconds: float = Field(default=30.0, gt=0)
    # The ceiling of the wait between retries: during a provider outage, how long after its
    # recovery a waiting message may still wait.
    backoff_max_seconds: float = Field(default=300.0, gt=0)
    # A provider that failed this many times in a row is left alone for the cool-down.
    breaker_threshold: int = Field(default=5, ge=1)
    breaker_cooldown_seconds: float = Field(default=30.0, gt=0)
    # Finished notifications, events and rejected payloads older than this are deleted.
    retention_days: int = Field(default=180, ge=1)
    housekeeping_seconds: float = Field(default=21_600.0, gt=0)
    # SQLite only: how often the write-ahead log is folded back into the database file.
    checkpoint_seconds: float = Field(default=300.0, gt=0)


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


class ServiceSettings(BaseModel):
    """Service recovery: the shop's business hours, the recovery measure, the weekly digest."""

    # Response deadlines (rules' respond_within) count only these hours ("always": round the clock)
    business_hours: str = "09:00-18:00"
    business_days: str = "mon-fri"
    # Public holidays of this country are days off ("CN"; "" for none).
    holidays: str = "CN"
    # A customer who orders again within this many days of a complaint counts as won back.
    recovery_days: int = Field(default=60, ge=1)
    # An order of the same SKU by the same customer within this many days of a restock or
    # stock-up reminder counts as a reorder it brought (the dashboard's results per rule).
    reorder_window_days: int = Field(default=14, ge=1)
    # When the weekly digest (rule on digest.weekly) goes out, in the shop's zone: 0 = Monday.
    digest_weekday: int = Field(default=0, ge=0, le=6)
    digest_hour: int = Field(default=9, ge=0, le=23)

    @field_validator("business_hours")
    @classmethod
    def _hours_shape(cls, value: str) -> str:
        from carebot.rulebook.windows import parse_window

        if value.strip().lower() != "always":
            parse_window(value)
        return value

    @field_validator("business_days")
    @classmethod
    def _days_shape(cls, value: str) -> str:
        from carebot.business_hours import parse_days

        parse_days(value)
        return value


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
    # Where a phone number written without +country code is read as from (ISO 3166, e.g. "CN"),
    # when the customer's own country is not known (the dashboard's search box).
    default_region: str = "CN"
    # Customer's local time; "none" (None here) turns it off. Parsed once, here.
    quiet_hours: DailyWindow | None = DailyWindow(time(21), time(9))
    # "text" (key=value, for a terminal) or "json" (one object per line, for a log collector).
    log_format: Literal["text", "json"] = "text"
    http: HttpSettings = Field(default_factory=HttpSettings)
    sms: SmsSettings = Field(default_factory=SmsSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    aliyun: AliyunSettings = Field(default_factory=AliyunSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    watchers: WatcherSettings = Field(default_factory=WatcherSettings)
    caps: CapSettings = Field(default_factory=CapSettings)
    render: RenderSettings = Field(default_factory=RenderSettings)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)

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

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        import phonenumbers

        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r}: an ISO 3166 code such as CN or US")
        return region

    @field_validator("quiet_hours", mode="before")
    @classmethod
    def _parse_quiet_hours(cls, value: Any) -> Any:
        if isinstance(value, str):
            return None if value.strip().lower() == "none" else parse_window(value)
        return value

    @property
    def sms_rate_per_second(self) -> float | None:
        """The configured SMS provider's shared rate limit."""
        if self.sms.provider == "aliyun":
            return self.aliyun.rate_per_second
        return self.twilio.rate_per_second

    @property
    def sms_concurrency(self) -> int:
        """How many sends the configured SMS provider may have in flight."""
        if self.sms.provider == "aliyun":
            return self.aliyun.concurrency
        return self.twilio.concurrency

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
