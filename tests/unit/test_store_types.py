"""``UTCDateTime`` on SQLite binds the text SQLAlchemy's own ``DATETIME`` would store.

Stored instants are compared as text (the due-time index), so the format must not drift from
what databases written before hold.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import DateTime
from sqlalchemy.dialects import postgresql, sqlite

from carebot.store.types import UTCDateTime

SQLITE = sqlite.dialect()
POSTGRESQL = postgresql.dialect()  # type: ignore[no-untyped-call]  # SQLAlchemy leaves it untyped
SHANGHAI = timezone(timedelta(hours=8))


@pytest.mark.parametrize(
    "instant",
    [
        datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
        datetime(2026, 11, 23, 9, 0, 0, 5, tzinfo=SHANGHAI),
        datetime(2026, 3, 29, 1, 30, 59, 999999, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
        datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC),
    ],
)
def test_sqlite_binds_datetime_storage_text_of_the_utc_instant(instant: datetime) -> None:
    ours = UTCDateTime().dialect_impl(SQLITE)
    bind = ours.bind_processor(SQLITE)
    theirs = DateTime().dialect_impl(SQLITE).bind_processor(SQLITE)
    assert bind is not None and theirs is not None
    stored = bind(instant)
    assert stored == theirs(instant.astimezone(UTC).replace(tzinfo=None))
    # And it reads back as the same instant, in UTC.
    read = ours.result_processor(SQLITE, None)
    assert read is not None
    value = read(stored)
    assert value == instant and value.tzinfo == UTC


def test_a_naive_instant_is_refused_and_none_stays_none() -> None:
    process: Callable[[datetime | None], Any] | None = (
        UTCDateTime().dialect_impl(SQLITE).bind_processor(SQLITE)
    )
    assert process is not None
    assert process(None) is None
    with pytest.raises(ValueError, match="naive"):
        process(datetime(2026, 11, 23, 9, 0))


def test_postgresql_keeps_the_aware_utc_instant() -> None:
    process = UTCDateTime().bind_processor(POSTGRESQL)
    value = datetime(2026, 11, 23, 17, 0, tzinfo=SHANGHAI)
    bound = process(value) if process else UTCDateTime().process_bind_param(value, POSTGRESQL)
    assert bound == value and bound.tzinfo == UTC
