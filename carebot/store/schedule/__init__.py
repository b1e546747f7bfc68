"""The durable schedule: notification rows and every state change the dispatcher makes.

Each function is one short statement or transaction; none is ever held open across a call to
a provider. By concern: ``planning`` (the planner's inserts and cancellations), ``claims``
(the dispatcher's claim and the next due time), ``sending`` (the send protocol's writes),
``outcomes`` (retries, ends, delivery receipts), ``reaper`` (dead workers' leases),
``guards`` (consent and frequency-cap reads) and ``merging``. Every statement is Core on the
table with bound parameters (``_sql``).
"""

from __future__ import annotations

from carebot.store.schedule._sql import IS_SCHEDULED
from carebot.store.schedule.claims import Claimed, claim_due, due_candidates, next_due_at
from carebot.store.schedule.guards import guards, guards_many
from carebot.store.schedule.merging import MergeTarget, absorb, merge_target
from carebot.store.schedule.outcomes import finish, release, settle_from_provider
from carebot.store.schedule.planning import (
    cancel_pending,
    cancel_rules,
    insert_planned,
    release_waiting,
)
from carebot.store.schedule.reaper import (
    REAPED_GAVE_UP,
    REAPED_LATE_CLAIM,
    REAPED_LATE_SEND,
    REAPED_RESEND,
    REAPED_UNKNOWN,
    ReapReport,
    reap_expired_leases,
)
from carebot.store.schedule.sending import (
    mark_sending,
    mark_sending_many,
    mark_sent,
    mark_sent_many,
)

__all__ = [
    "IS_SCHEDULED",
    "REAPED_GAVE_UP",
    "REAPED_LATE_CLAIM",
    "REAPED_LATE_SEND",
    "REAPED_RESEND",
    "REAPED_UNKNOWN",
    "Claimed",
    "MergeTarget",
    "ReapReport",
    "absorb",
    "cancel_pending",
    "cancel_rules",
    "claim_due",
    "due_candidates",
    "finish",
    "guards",
    "guards_many",
    "insert_planned",
    "mark_sending",
    "mark_sending_many",
    "mark_sent",
    "mark_sent_many",
    "merge_target",
    "next_due_at",
    "reap_expired_leases",
    "release",
    "release_waiting",
    "settle_from_provider",
]
