"""outage: notifications.unexpected_failures, the attempts that count against max_attempts

Transient provider failures (timeouts, 5xx, 429, SMTP 4xx) no longer end a message before its
not_after; only unexpected failures (an exception the channel does not know, a sender that
died mid-send) count towards max_attempts.

Revision ID: 0005_outage
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_outage"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(
            sa.Column("unexpected_failures", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("unexpected_failures")
