"""Login throttling: each wrong token from an address doubles how long that address must wait.

In memory, per process: an attacker spreading guesses over several daemons behind one balancer
gets each daemon's allowance, and a restart forgets. The address is the TCP peer, so behind a
reverse proxy every client shares the proxy's allowance (put the throttle in the proxy there).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["LoginThrottle"]


@dataclass
class _Record:
    failures: int
    blocked_until: datetime


class LoginThrottle:
    """Past ``free`` wrong tokens, each doubles the wait (``base`` first, ``ceiling`` at most)."""

    def __init__(
        self,
        *,
        free: int = 3,
        base: timedelta = timedelta(seconds=1),
        ceiling: timedelta = timedelta(minutes=15),
        max_addresses: int = 10_000,
    ) -> None:
        self.free = free
        self.base = base
        self.ceiling = ceiling
        self.max_addresses = max_addresses
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def wait(self, address: str, now: datetime) -> timedelta:
        """How long ``address`` must still wait before its next try (zero: it may try now)."""
        record = self._records.get(address)
        if record is None or record.blocked_until <= now:
            return timedelta(0)
        return record.blocked_until - now

    def failed(self, address: str, now: datetime) -> timedelta:
        """Count a wrong token; the wait it earns (zero for the first ``free`` ones)."""
        record = self._records.pop(address, None) or _Record(0, now)
        record.failures += 1
        extra = record.failures - self.free
        doubled = self.base * 2 ** min(extra - 1, 20)
        delay = timedelta(0) if extra <= 0 else min(self.ceiling, doubled)
        record.blocked_until = now + delay
        self._records[address] = record  # most recent last
        while len(self._records) > self.max_addresses:
            self._records.popitem(last=False)  # forget the address idle the longest
        return delay

    def succeeded(self, address: str) -> None:
        """A right token clears the address's record."""
        self._records.pop(address, None)
