"""Retry delays: exponential, capped, with jitter that is deterministic per message."""

from __future__ import annotations

import hashlib
from datetime import timedelta

__all__ = ["retry_delay"]


def retry_delay(
    attempt: int,
    *,
    notification_id: int,
    base_seconds: float,
    max_seconds: float,
    retry_after: float | None = None,
) -> timedelta:
    """The wait before try ``attempt + 1``; the provider's ``Retry-After`` is a floor.

    The jitter (50–100 % of the exponential step) comes from a hash of the message and the
    attempt, so retries spread out yet a replay in ``carebot simulate`` stays deterministic.
    """
    step = min(max_seconds, base_seconds * 2 ** max(0, attempt - 1))
    digest = hashlib.blake2b(f"{notification_id}:{attempt}".encode(), digest_size=2).digest()
    jitter = 0.5 + int.from_bytes(digest, "big") / 0xFFFF / 2
    seconds = step * jitter
    if retry_after is not None:
        seconds = max(seconds, retry_after)
    return timedelta(seconds=seconds)
