"""Several daemons on one PostgreSQL database share the work: every message exactly once."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from carebot.testing.twilio_server import FakeTwilioServer

from .conftest import shipped_event, twilio_env, wait_until

pytestmark = pytest.mark.postgres

SHIPMENTS = 240


def test_three_daemons_on_one_database_send_every_message_exactly_once(
    daemon_factory: Any, twilio_server: FakeTwilioServer, postgres_url: str
) -> None:
    env = twilio_env(twilio_server, CAREBOT_DATABASE_URL=postgres_url)
    daemons = [daemon_factory(**env) for _ in range(3)]
    for daemon in daemons:
        daemon.start()
    phones = [f"+861380{n:07d}" for n in range(SHIPMENTS)]
    for n, phone in enumerate(phones):
        response = daemons[n % 3].post(shipped_event(5000 + n, phone=phone))
        assert response.status_code == 202, response.text
    engine = create_engine(postgres_url)

    def sent() -> int:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text("select count(*) from notifications where status = 'sent'")
                ).scalar_one()
            )

    assert wait_until(lambda: sent() == SHIPMENTS, timeout=60), sent()
    counts = Counter(r["To"] for r in twilio_server.requests)
    assert set(counts) == set(phones)
    assert max(counts.values()) == 1, [p for p, c in counts.items() if c > 1]
    with engine.connect() as connection:
        workers = connection.execute(
            text("select count(distinct locked_by) from notifications")
        ).scalar_one()
    engine.dispose()
    assert workers == 0  # every lease released once sent
    per_daemon = [d.stderr_path.read_text().count("action=notification_sent") for d in daemons]
    assert sum(per_daemon) == SHIPMENTS and all(per_daemon), per_daemon
