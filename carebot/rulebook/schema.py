"""What a merchant may write in ``rules/*.yaml``: rules, product care profiles, disruptions."""

from __future__ import annotations

import enum
import fnmatch
import re
from datetime import date, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from carebot.events import EVENT_TYPES
from carebot.rulebook.windows import DailyWindow, parse_duration, parse_window

__all__ = [
    "AliyunTemplate",
    "Audience",
    "ChannelChoice",
    "DedupeScope",
    "Disruption",
    "FeedbackCategory",
    "InDoubtPolicy",
    "Label",
    "ProductProfile",
    "Region",
    "Rule",
    "RuleKind",
    "Rulebook",
    "SendSpec",
    "label_in",
]


class ChannelChoice(enum.StrEnum):
    SMS = "sms"
    EMAIL = "email"
    BOTH = "sms+email"
    PREFERRED = "preferred"  # SMS when the customer has a valid phone number, else email


class DedupeScope(enum.StrEnum):
    ORDER = "order"
    SHIPMENT = "shipment"
    EVENT = "event"
    CUSTOMER = "customer"


class Audience(enum.StrEnum):
    """Who a rule writes to."""

    CUSTOMER = "customer"
    # The shop itself (CAREBOT_ALERTS__EMAIL): service-recovery alerts that must not wait for
    # the customer's quiet hours nor count against the customer's frequency cap.
    MERCHANT = "merchant"


class RuleKind(enum.StrEnum):
    """What a rule's messages are to the customer."""

    CARE = "care"  # about their order: shipped, delivered, a delay, a feedback request
    # Selling: restock and stock-up reminders. Held while the customer has an unhandled complaint.
    MARKETING = "marketing"


class InDoubtPolicy(enum.StrEnum):
    """What to do with a message whose sender died mid-send (it may or may not have left)."""

    RESEND = "resend"  # at most one duplicate, never a loss
    UNKNOWN = "unknown"  # never a duplicate; the row ends ``unknown`` unless a callback settles it


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _check_event_type(value: str) -> str:
    if value not in EVENT_TYPES:
        from difflib import get_close_matches

        hint = get_close_matches(value, sorted(EVENT_TYPES), n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"unknown event type {value!r}{suggestion}")
    return value


# Alibaba Cloud's variable names: a letter first, then letters, digits and underscores, at most
# 25 characters, and none of the names it reserves (its template guidelines, "变量名称").
ALIYUN_RESERVED_NAMES = frozenset({"email", "mobile", "id", "nick", "site"})


class AliyunTemplate(_Strict):
    """An approved Alibaba Cloud template: its CODE and how each ``${variable}`` is filled."""

    code: str = Field(pattern=r"^SMS_[0-9]+$")
    # Variable name → a Jinja2 template over the event context ("{{ order.id }}").
    params: dict[str, str] = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _variable_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _ALIYUN_VARIABLE.match(name):
                raise ValueError(
                    f"variable {name!r}: a letter, then letters, digits or _ (at most 25)"
                )
            if name.lower() in ALIYUN_RESERVED_NAMES:
                raise ValueError(f"variable {name!r} is a name Alibaba Cloud does not allow")
        return value


_ALIYUN_VARIABLE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,24}$")
# A name shown to people: one string, or one per locale ({zh-CN: 运输破损, en: Damaged in transit}).
Label = str | dict[str, str]


def label_in(label: Label | None, locale: str, fallback: str) -> str:
    """``label`` in ``locale`` (``zh`` matches ``zh-CN``), else its first entry, else the id."""
    if label is None:
        return fallback
    if isinstance(label, str):
        return label
    for key, text in label.items():
        if (
            key.lower() == locale.lower()
            or key.split("-")[0].lower() == locale.split("-")[0].lower()
        ):
            return text
    return next(iter(label.values()), fallback)


class SendSpec(_Strict):
    channel: ChannelChoice = ChannelChoice.PREFERRED
    template: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    # The approved template that carries this rule's SMS when the SMS provider is Alibaba Cloud
    # (its SMS are sent from approved templates, never as free text).
    aliyun: AliyunTemplate | None = None


class Rule(_Strict):
    """One moment of care: on an event, when a condition holds, send a template at a time."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    label: Label | None = None
    # false: the rule is kept in the file but plans nothing (e.g. the weekly digest, switched off)
    enabled: bool = True
    on: Annotated[list[str], BeforeValidator(_as_list)] = Field(min_length=1)
    when: str | None = None
    delay: str | None = None
    window: str | None = None
    send: SendSpec
    cancel_on: Annotated[list[str], BeforeValidator(_as_list)] = Field(default_factory=list)
    once_per: DedupeScope | None = None
    expires_after: str = "2d"
    # How old the triggering event may be when it arrives (a backfilled or late webhook):
    # older, and the message is recorded ``expired`` with the reason instead of being sent.
    max_event_age: str | None = None
    transactional: bool = False
    in_doubt: InDoubtPolicy = InDoubtPolicy.RESEND
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    max_segments: int = Field(default=3, ge=1, le=10)
    audience: Audience = Audience.CUSTOMER
    kind: RuleKind = RuleKind.CARE
    expects_reply: bool = False
    # A condition the message waits for (e.g. a tracking number): while it does not hold the
    # message is due ``wait_up_to`` later; a later event of the order that makes it hold sends
    # the waiting message at once, with the newer facts.
    wait_for: str | None = None
    wait_up_to: str | None = None

    @field_validator("on", "cancel_on")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        return [_check_event_type(v) for v in value]

    @field_validator("window")
    @classmethod
    def _window_shape(cls, value: str | None) -> str | None:
        if value is not None:
            parse_window(value)
        return value

    @field_validator("expires_after")
    @classmethod
    def _expiry_shape(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("max_event_age")
    @classmethod
    def _age_shape(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("delay")
    @classmethod
    def _delay_shape(cls, value: str | None) -> str | None:
        # A delay with {{ … }} is computed per event; a literal one must parse now.
        if value is not None and "{{" not in value:
            parse_duration(value)
        return value

    @field_validator("wait_up_to")
    @classmethod
    def _wait_shape(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _wait_complete(self) -> Rule:
        if (self.wait_for is None) != (self.wait_up_to is None):
            raise ValueError("wait_for and wait_up_to go together: what to wait for, how long")
        return self

    @property
    def wait_timeout(self) -> timedelta:
        return parse_duration(self.wait_up_to) if self.wait_up_to else timedelta(0)

    @model_validator(mode="after")
    def _merchant_by_email(self) -> Rule:
        if self.audience == Audience.MERCHANT and self.send.channel != ChannelChoice.EMAIL:
            raise ValueError("a rule with audience: merchant sends by email (send.channel: email)")
        return self

    def label_in(self, locale: str) -> str:
        return label_in(self.label, locale, self.id)

    @property
    def daily_window(self) -> DailyWindow | None:
        return parse_window(self.window) if self.window else None

    @property
    def expiry(self) -> timedelta:
        return parse_duration(self.expires_after)

    @property
    def max_age(self) -> timedelta | None:
        return parse_duration(self.max_event_age) if self.max_event_age else None

    def scope_for(self, event_type: str) -> DedupeScope:
        if self.once_per is not None:
            return self.once_per
        return DedupeScope.SHIPMENT if event_type.startswith("shipment.") else DedupeScope.ORDER


class ProductMatch(_Strict):
    sku: str | None = None
    tag: str | None = None

    @model_validator(mode="after")
    def _something(self) -> ProductMatch:
        if not self.sku and not self.tag:
            raise ValueError("match needs a sku pattern or a tag")
        return self


class ProductProfile(_Strict):
    """Care facts for products matched by SKU pattern (``MILK-*``) or tag."""

    match: ProductMatch
    days_per_unit: float | None = Field(default=None, gt=0)
    follow_up_days: float | None = Field(default=None, ge=0)
    restock_lead_days: float | None = Field(default=None, ge=0)

    def matches(self, sku: str | None, tags: list[str]) -> bool:
        if self.match.sku is not None and (
            sku is None or not fnmatch.fnmatchcase(sku, self.match.sku)
        ):
            return False
        return not (self.match.tag is not None and self.match.tag not in tags)

    def facts(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump(exclude={"match"}).items() if v is not None}


class Region(_Strict):
    country: str | None = None
    province: str | None = None
    city: str | None = None
    postal_prefix: str | None = None


class Disruption(_Strict):
    id: str = Field(min_length=1)
    title: str
    regions: list[Region] = Field(default_factory=list)
    start: date
    end: date
    extra_transit_days: float = Field(default=0, ge=0)
    notice_days: float = Field(default=7, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Disruption:
        if self.end < self.start:
            raise ValueError("end is before start")
        return self


class FeedbackCategory(_Strict):
    """An after-sales category of customer replies, recognised by keywords."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    label: Label | None = None
    complaint: bool = True
    keywords: list[str] = Field(min_length=1)
    # How soon, in business hours, the shop should act on a case of this category.
    respond_within: str = "1d"

    @field_validator("respond_within")
    @classmethod
    def _respond_shape(cls, value: str) -> str:
        if parse_duration(value) <= timedelta(0):
            raise ValueError("respond_within should be longer than 0")
        return value

    @property
    def response_time(self) -> timedelta:
        return parse_duration(self.respond_within)

    def label_in(self, locale: str) -> str:
        return label_in(self.label, locale, self.id)

    @field_validator("keywords")
    @classmethod
    def _no_blank(cls, value: list[str]) -> list[str]:
        if any(not k.strip() for k in value):
            raise ValueError("a keyword should not be empty")
        return value


class Rulebook(_Strict):
    """Everything loaded from the rules folder: the rule set the planner works from."""

    rules: tuple[Rule, ...] = ()
    products: tuple[ProductProfile, ...] = ()
    disruptions: tuple[Disruption, ...] = ()
    calendars: tuple[str, ...] = ()
    feedback: tuple[FeedbackCategory, ...] = ()

    def rules_on(self, event_type: str) -> list[Rule]:
        return [r for r in self.rules if r.enabled and event_type in r.on]

    def rules_cancelled_by(self, event_type: str) -> list[Rule]:
        return [r for r in self.rules if event_type in r.cancel_on]

    def reply_rule_ids(self) -> list[str]:
        """The rules whose messages ask the customer to reply (feedback requests)."""
        return [r.id for r in self.rules if r.expects_reply]

    def category(self, category_id: str) -> FeedbackCategory | None:
        return next((c for c in self.feedback if c.id == category_id), None)

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def profile_for(self, sku: str | None, tags: list[str]) -> dict[str, float]:
        """Merged facts of every matching profile; earlier entries win."""
        facts: dict[str, float] = {}
        for profile in reversed(self.products):
            if profile.matches(sku, tags):
                facts.update(profile.facts())
        return facts
