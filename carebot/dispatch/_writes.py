"""Group commit of the send path's two writes: ``sending`` before a call, ``sent`` after it.

Every concurrent send still waits until its own row is committed ``sending`` before it calls
the provider, and learns whether its claim still held; but the rows that ask while a commit is
under way go together in the next one: one transaction (and, on SQLite, one turn on the write
lock) for every row that became ready meanwhile, instead of one per row. When nothing else
is waiting, a row is committed at once, alone: batching adds no delay of its own.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from carebot.store import schedule

__all__ = ["SendWrites"]

logger = logging.getLogger(__name__)

# Run one transaction's work (``fn(session)``) and return its result.
Transact = Callable[[Callable[[Session], Any]], Awaitable[Any]]


@dataclass
class _Pending:
    sending: list[tuple[dict[str, Any], asyncio.Future[bool]]] = field(default_factory=list)
    sent: list[tuple[dict[str, Any], asyncio.Future[None]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.sending or self.sent)


class SendWrites:
    """Collects ``sending`` and ``sent`` writes and commits them in shared transactions."""

    def __init__(
        self, transact: Transact, *, worker: str, lease: timedelta, inline: bool = False
    ) -> None:
        """``inline``: commit each write at once, alone (a virtual-time replay, where
        database work runs inline in a deterministic order)."""
        self._transact = transact
        self._inline = inline
        self._worker = worker
        self._lease = lease
        self._pending = _Pending()
        self._flushing: asyncio.Task[None] | None = None

    async def sending(self, **row: Any) -> bool:
        """Commit the row ``sending``; False when its claim was lost (reaped or cancelled)."""
        if self._inline:
            ours = await self._transact(
                lambda session: schedule.mark_sending_many(
                    session, worker=self._worker, lease=self._lease, rows=[row]
                )
            )
            return row["notification_id"] in ours
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.sending.append((row, future))
        self._kick()
        return await future

    async def sent(self, **row: Any) -> None:
        """Commit the row ``sent`` with the provider's receipt."""
        if self._inline:
            await self._transact(lambda session: schedule.mark_sent_many(session, [row]))
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.sent.append((row, future))
        self._kick()
        await future

    def _kick(self) -> None:
        if self._inline:
            return
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush())

    def _write(
        self, sending: list[dict[str, Any]], sent: list[dict[str, Any]], session: Session
    ) -> set[int]:
        schedule.mark_sent_many(session, sent)
        return schedule.mark_sending_many(
            session, worker=self._worker, lease=self._lease, rows=sending
        )

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, _Pending()
            sending = [row for row, _ in batch.sending]
            sent = [row for row, _ in batch.sent]
            try:
                ours = await self._transact(functools.partial(self._write, sending, sent))
            except BaseException as exc:
                # Every row of the batch stays as it was (claimed or sending): each caller
                # gets the error, and the reaper settles the rows.
                cancelled = isinstance(exc, asyncio.CancelledError)
                waiters: list[asyncio.Future[Any]] = [
                    *(f for _, f in batch.sending),
                    *(f for _, f in batch.sent),
                ]
                for waiter in waiters:
                    if waiter.done():
                        continue
                    if cancelled:
                        waiter.cancel()
                    else:
                        waiter.set_exception(exc)
                if cancelled:
                    raise
                continue
            for row, future in batch.sending:
                if not future.done():
                    future.set_result(row["notification_id"] in ours)
            for _, done in batch.sent:
                if not done.done():
                    done.set_result(None)
