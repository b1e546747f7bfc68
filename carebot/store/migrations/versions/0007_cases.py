"""cases: service recovery, one complaint followed until the customer is happy again

Revision ID: 0007_cases
Revises: 0006_hardening
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from carebot.store.types import UTCDateTime

revision = "0007_cases"
down_revision = "0006_hardening"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ACTIVE = sa.text("status IN ('open', 'contacted')")


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=True),
        sa.Column("products", _JSON, nullable=False),
        sa.Column("category", sa.String(length=60), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("deadline_at", UTCDateTime(), nullable=True),
        sa.Column("overdue_at", UTCDateTime(), nullable=True),
        sa.Column("alerted_step", sa.Integer(), nullable=True),
        sa.Column("contacted_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("recovered", sa.Boolean(), nullable=True),
        sa.Column("history", _JSON, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
    )
    op.create_index(op.f("ix_cases_order_id"), "cases", ["order_id"])
    op.create_index(op.f("ix_cases_customer_id"), "cases", ["customer_id"])
    op.create_index(op.f("ix_cases_category"), "cases", ["category"])
    op.create_index(op.f("ix_cases_opened_at"), "cases", ["opened_at"])
    op.create_index("ix_cases_status_deadline_at", "cases", ["status", "deadline_at"])
    op.create_index(
        "uq_cases_active_order",
        "cases",
        ["order_id"],
        unique=True,
        postgresql_where=_ACTIVE,
        sqlite_where=_ACTIVE,
    )

    op.create_index(
        "ix_feedback_customer_id_received_at", "feedback", ["customer_id", "received_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_feedback_customer_id_received_at", table_name="feedback")
    op.drop_table("cases")
