"""hardening: random email unsubscribe tokens that do not reveal the address

Revision ID: 0006_hardening
Revises: 0005_outage
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from carebot.store.types import UTCDateTime

revision = "0006_hardening"
down_revision = "0005_outage"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unsubscribe_tokens",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_unsubscribe_tokens")),
        sa.UniqueConstraint("address", name=op.f("uq_unsubscribe_tokens_address")),
    )


def downgrade() -> None:
    op.drop_table("unsubscribe_tokens")
