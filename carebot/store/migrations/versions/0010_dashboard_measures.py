"""dashboard measures: covering indexes for the dashboard's period aggregates

The overview's week, the results per rule and the upcoming grid read notifications by due
time and group them by rule, status and channel; the feedback page reads replies and cases by
received/opened time. Each index holds every column its query reads, so a period is one
index range scan with no row lookups.

Revision ID: 0010_dashboard_measures
Revises: 0009_dashboard
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0010_dashboard_measures"
down_revision = "0009_dashboard"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_notifications_due_rule_status_channel": (
        "notifications",
        ["due_at", "rule_id", "status", "channel"],
    ),
    "ix_feedback_received_category_score": (
        "feedback",
        ["received_at", "category", "score", "order_id"],
    ),
    "ix_cases_opened_measures": (
        "cases",
        ["opened_at", "status", "category", "overdue_at", "contacted_at", "resolved_at"],
    ),
}


def upgrade() -> None:
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, (table, _) in INDEXES.items():
        op.drop_index(name, table_name=table)
