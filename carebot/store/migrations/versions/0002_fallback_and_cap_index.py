"""fallback recipient and frequency-cap index on notifications

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fallback_recipient", sa.String(length=320), nullable=True))
        batch_op.create_index(
            "ix_notifications_channel_recipient_sent_at",
            ["channel", "recipient", "sent_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_channel_recipient_sent_at")
        batch_op.drop_column("fallback_recipient")
