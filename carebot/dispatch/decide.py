"""The dispatch decision: what to do with one claimed row now, as a pure function.

``decide(row, guards, now, policy)`` applies the guards in order and answers one of:

- ``Send``: every guard passed.
- ``Hold(until, reason)``: not now (quiet hours, the rule's window): move the row, no attempt.
- ``Merge(due_by, otherwise)``: the frequency cap is full; fold the row into a pending message
  of the same rule to the same address due by ``due_by`` (the dispatcher knows whether one
  exists and whether its template shows merged notices), else do ``otherwise`` (a ``Hold``
  until the next free slot, or a ``Finish`` when there is none before ``not_after``).
- ``Finish(status, reason, fall_back)``: end the row (expired, failed, suppressed); with
  ``fall_back``, the same notice goes to the rule's other channel.

The guards, in order: ``not_after`` (expired), an address that is there and valid (failed),
then for customer messages only: consent (suppressed; a transactional email overrides an email
opt-out, nothing overrides an SMS STOP), quiet hours and the rule's window in the customer's
zone (held), the frequency cap (merged or deferred; transactional messages are exempt).
Alerts to the merchant (``audience = merchant``) skip consent, quiet hours and caps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from carebot.channels.base import ChannelKind
from carebot.contacts import normalize_phone, valid_email
from carebot.dispatch.caps import next_free_slot
from carebot.notifications import NotificationStatus as S
from carebot.rulebook.windows import DailyWindow, next_allowed, parse_window
from carebot.store.schedule import Claimed

__all__ = [
    "MERCHANT",
    "Decision",
    "Finish",
    "Guards",
    "Hold",
    "Merge",
    "Policy",
    "Send",
    "decide",
    "local_time",
    "needs_guards",
]

# Rows of rules with ``audience: merchant``.
MERCHANT = "merchant"

# What the guards need to know of an address before a send: whether it opted out of the
# channel, and when messages to it went out within the frequency cap's rolling window.
Guards = tuple[bool, list[datetime]]


@dataclass(frozen=True)
class Policy:
    """The installation's guards: when customers may be messaged, and the caps per channel."""

    send_window: DailyWindow | None
    caps: Mapping[ChannelKind, int]

    def windows(self, row: Claimed) -> list[DailyWindow]:
        windows = [self.send_window] if self.send_window else []
        if row.window:
            windows.append(parse_window(row.window))
        return windows


@dataclass(frozen=True)
class Send:
    pass


@dataclass(frozen=True)
class Hold:
    until: datetime
    reason: str
    # How the dispatch report counts it: ``held`` (quiet hours, windows) or ``deferred`` (cap).
    outcome: str = "held"


@dataclass(frozen=True)
class Finish:
    status: S
    reason: str
    fall_back: bool = False


@dataclass(frozen=True)
class Merge:
    due_by: datetime
    otherwise: Hold | Finish


Decision = Send | Hold | Merge | Finish


def needs_guards(row: Claimed, now: datetime) -> bool:
    """Whether ``decide`` will read the address's guards (consent, recent sends) for ``row``."""
    return (
        now <= row.not_after
        and row.audience != MERCHANT
        and bool(row.recipient)
        and _valid_address(ChannelKind(row.channel), row.recipient or "")
    )


def decide(row: Claimed, guards: Guards | None, now: datetime, policy: Policy) -> Decision:
    """What to do with ``row`` at ``now``; ``guards`` is required when ``needs_guards``."""
    if now > row.not_after:
        return Finish(S.EXPIRED, f"not sent: past its not-after time {row.not_after.isoformat()}")
    kind = ChannelKind(row.channel)
    if not row.recipient:
        return Finish(S.FAILED, f"no {kind} address", fall_back=True)
    if not _valid_address(kind, row.recipient):
        return Finish(S.FAILED, f"invalid {kind} address; not sent", fall_back=True)
    if row.audience == MERCHANT:
        return Send()
    if guards is None:
        raise ValueError("decide needs the guards of a customer message")
    opted_out, recent = guards
    # A transactional notice overrides an email marketing opt-out, never an SMS STOP.
    if opted_out and (kind == ChannelKind.SMS or not row.transactional):
        return Finish(S.SUPPRESSED, f"recipient opted out of {kind}", fall_back=True)
    zone = ZoneInfo(row.timezone)
    windows = policy.windows(row)
    held = next_allowed(now, zone, windows)
    if held > now:
        if held > row.not_after:
            return Finish(S.EXPIRED, "not sent: no allowed hour before its not-after time")
        return Hold(held, f"held for quiet hours until {local_time(held, row.timezone)}")
    if row.transactional:
        return Send()
    limit = policy.caps[kind]
    free = next_free_slot(recent, limit=limit, now=now)
    if free <= now:
        return Send()
    slot = next_allowed(free, zone, windows)
    cap = f"the frequency cap ({limit} {kind} per 24 h)"
    otherwise: Hold | Finish = (
        Finish(S.EXPIRED, f"not sent: {cap} has no free slot before its not-after time")
        if slot > row.not_after
        else Hold(slot, f"deferred by {cap} until {local_time(slot, row.timezone)}", "deferred")
    )
    return Merge(due_by=slot, otherwise=otherwise)


def _valid_address(kind: ChannelKind, address: str) -> bool:
    if kind == ChannelKind.SMS:
        return normalize_phone(address) == address
    return valid_email(address)


def local_time(instant: datetime, zone: str) -> str:
    return f"{instant.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M %Z}"
