"""dashboard: the audit of contacts corrected from the order page

Revision ID: 0009_dashboard
Revises: 0008_platforms
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from carebot.store.types import UTCDateTime

revision = "0009_dashboard"
down_revision = "0008_platforms"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("field", sa.String(length=20), nullable=False),
        sa.Column("old_value", sa.String(length=320), nullable=True),
        sa.Column("new_value", sa.String(length=320), nullable=False),
        sa.Column("who", sa.String(length=100), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        # Pending messages of the customer that now go to the corrected address.
        sa.Column("messages_updated", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_changes")),
    )
    op.create_index(op.f("ix_contact_changes_customer_id"), "contact_changes", ["customer_id"])


def downgrade() -> None:
    op.drop_table("contact_changes")
