"""SQLAlchemy models: the only shared state of carebot."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from carebot.store.types import UTCDateTime

__all__ = [
    "Base",
    "CaseRow",
    "ConsentRow",
    "CustomerRow",
    "EventRow",
    "FeedbackRow",
    "KeyValueRow",
    "LineItemRow",
    "NotificationRow",
    "OrderRow",
    "RateBucketRow",
    "RejectedPayloadRow",
    "ShipmentRow",
    "UnsubscribeTokenRow",
]

JSONType = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
    }


class CustomerRow(Base):
    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40), index=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    locale: Mapped[str | None] = mapped_column(String(20))
    timezone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class OrderRow(Base):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    # The number the customer knows ("#1001"); ``id`` is the platform's key.
    number: Mapped[str | None] = mapped_column(String(100))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), index=True)
    placed_at: Mapped[datetime | None]
    total: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str | None] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(20), default="placed")
    status_at: Mapped[datetime | None]
    shipping_address: Mapped[dict[str, Any] | None]
    billing_address: Mapped[dict[str, Any] | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    items: Mapped[list[LineItemRow]] = relationship(
        order_by="LineItemRow.position", cascade="all, delete-orphan", lazy="selectin"
    )
    shipments: Mapped[list[ShipmentRow]] = relationship(
        order_by="ShipmentRow.id", lazy="selectin", viewonly=True
    )
    customer: Mapped[CustomerRow | None] = relationship(lazy="joined")


class LineItemRow(Base):
    __tablename__ = "line_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    position: Mapped[int]
    sku: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(500))
    quantity: Mapped[int] = mapped_column(default=1)
    unit_price: Mapped[str | None] = mapped_column(String(40))
    tags: Mapped[list[str] | None] = mapped_column(JSONType)


class ShipmentRow(Base):
    __tablename__ = "shipments"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id"), index=True)
    carrier: Mapped[str | None] = mapped_column(String(100))
    tracking_number: Mapped[str | None] = mapped_column(String(100), index=True)
    tracking_url: Mapped[str | None] = mapped_column(String(2000))
    status: Mapped[str | None] = mapped_column(String(40))
    status_at: Mapped[datetime | None]
    expected_delivery: Mapped[date | None] = mapped_column(Date)
    last_scan_at: Mapped[datetime | None]
    shipped_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("source", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[str] = mapped_column(String(200))
    delivery_id: Mapped[str | None] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(60), index=True)
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    order_id: Mapped[str | None] = mapped_column(String(200), index=True)
    shipment_id: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]]


class NotificationRow(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        # The dispatcher's only hot query: due pending rows, oldest first.
        Index(
            "ix_notifications_due_pending",
            "due_at",
            postgresql_where=text("status = 'scheduled'"),
            sqlite_where=text("status = 'scheduled'"),
        ),
        Index("ix_notifications_status_locked_until", "status", "locked_until"),
        # The frequency cap counts what went to one address on one channel lately.
        Index("ix_notifications_channel_recipient_sent_at", "channel", "recipient", "sent_at"),
        # The dashboard's periods (overview week, results, upcoming): an index-only scan.
        Index("ix_notifications_due_rule_status_channel", "due_at", "rule_id", "status", "channel"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(400), unique=True)
    rule_id: Mapped[str] = mapped_column(String(100), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    recipient: Mapped[str | None] = mapped_column(String(320))
    # For a `preferred` rule: the other channel's address, used when this one is refused.
    fallback_recipient: Mapped[str | None] = mapped_column(String(320))
    template: Mapped[str] = mapped_column(String(200))
    locale: Mapped[str] = mapped_column(String(20))
    timezone: Mapped[str] = mapped_column(String(64))
    window: Mapped[str | None] = mapped_column(String(20))
    order_id: Mapped[str | None] = mapped_column(String(200), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(200), index=True)
    shipment_id: Mapped[str | None] = mapped_column(String(200))
    event_id: Mapped[str | None] = mapped_column(String(200))
    context: Mapped[dict[str, Any]]
    due_at: Mapped[datetime]
    not_after: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=6)
    # Attempts that ended in an unexpected error or a sender dying mid-send: only these count
    # against ``max_attempts`` (transient provider failures retry until ``not_after``).
    unexpected_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    transactional: Mapped[bool] = mapped_column(Boolean, default=False)
    in_doubt: Mapped[str] = mapped_column(String(10), default="resend")
    # ``merchant`` rows go to the shop (alerts): no consent, quiet hours or caps apply.
    audience: Mapped[str] = mapped_column(String(10), default="customer", server_default="customer")
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[datetime | None]
    provider_id: Mapped[str | None] = mapped_column(String(100), index=True)
    provider_status: Mapped[str | None] = mapped_column(String(40))
    last_error: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    segments: Mapped[int | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class FeedbackRow(Base):
    """A customer's reply to a feedback request: the score, their words, the category."""

    __tablename__ = "feedback"
    # A customer's next score after a complaint (the recovery measure).
    __table_args__ = (
        Index("ix_feedback_customer_id_received_at", "customer_id", "received_at"),
        # The feedback page's period: complaints, scores and products without row lookups.
        Index(
            "ix_feedback_received_category_score", "received_at", "category", "score", "order_id"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str | None] = mapped_column(String(200), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(200))
    # One reply per request: a second message to the same request is not a second score.
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), unique=True)
    score: Mapped[int | None]
    text: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(60))
    received_at: Mapped[datetime] = mapped_column(index=True)


# A case counts as active (one per order at a time) in these statuses.
ACTIVE_CASE = "status IN ('open', 'contacted')"


class CaseRow(Base):
    """Service recovery: one complaint followed until the customer is happy again."""

    __tablename__ = "cases"
    __table_args__ = (
        Index(
            "uq_cases_active_order",
            "order_id",
            unique=True,
            postgresql_where=text(ACTIVE_CASE),
            sqlite_where=text(ACTIVE_CASE),
        ),
        Index("ix_cases_status_deadline_at", "status", "deadline_at"),
        # The case measures over a period, read from the index alone.
        Index(
            "ix_cases_opened_measures",
            "opened_at",
            "status",
            "category",
            "overdue_at",
            "contacted_at",
            "resolved_at",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(200), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(200), index=True)
    # [{"sku": …, "title": …}] of the order, as when the case opened.
    products: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    category: Mapped[str] = mapped_column(String(60), index=True)
    text: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(20))
    # Counts the case's steps: a deadline alert goes out once per step.
    step: Mapped[int] = mapped_column(default=0)
    deadline_at: Mapped[datetime | None]
    # When a step first ran past its deadline (the case counts as past deadline).
    overdue_at: Mapped[datetime | None]
    # The step whose deadline alert was last raised (one alert per step).
    alerted_step: Mapped[int | None]
    contacted_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    # The customer's answer to "was it put right?": True, False, or None (not asked/answered).
    recovered: Mapped[bool | None] = mapped_column(Boolean)
    # [{"at", "who", "status", "note"}], oldest first.
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    updated_at: Mapped[datetime]


class ConsentRow(Base):
    """The latest consent state of one address (phone or email) on one channel."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("channel", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(10))
    address: Mapped[str] = mapped_column(String(320))
    opted_out: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(60))
    changed_at: Mapped[datetime]


class RejectedPayloadRow(Base):
    """A webhook body that was authentic but could not be understood, kept for inspection."""

    __tablename__ = "rejected_payloads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, Any]]
    body: Mapped[bytes] = mapped_column(LargeBinary)


class KeyValueRow(Base):
    """Small facts carebot keeps about itself (e.g. a generated webhook secret)."""

    __tablename__ = "carebot_meta"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class UnsubscribeTokenRow(Base):
    """The random token in an address's email unsubscribe links (it reveals nothing)."""

    __tablename__ = "unsubscribe_tokens"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RateBucketRow(Base):
    """A provider's token bucket, shared by every carebot process on this database."""

    __tablename__ = "rate_buckets"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ContactChangeRow(Base):
    """A customer's phone number or email address corrected on the dashboard: who, when,
    old → new, and how many pending messages it re-addressed."""

    __tablename__ = "contact_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(200), index=True)
    field: Mapped[str] = mapped_column(String(20))
    old_value: Mapped[str | None] = mapped_column(String(320))
    new_value: Mapped[str] = mapped_column(String(320))
    who: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime]
    messages_updated: Mapped[int] = mapped_column(Integer)
