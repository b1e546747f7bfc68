"""platforms: order number and billing address, shipment tracking link

Revision ID: 0008_platforms
Revises: 0007_cases
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008_platforms"
down_revision = "0007_cases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json_type = sa.JSON().with_variant(JSONB(), "postgresql")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("number", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("billing_address", json_type, nullable=True))
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tracking_url", sa.String(length=2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_column("tracking_url")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("billing_address")
        batch_op.drop_column("number")
