"""``dispatch.processes``: ``carebot run`` sends from several processes, each message once.

The daemon starts its dispatch workers, starts again one that dies, and stops them with itself;
a worker whose daemon was killed stops on its own.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from support.core import insert, migrated_database, planned

from carebot.testing.twilio_server import FakeTwilioServer

from .conftest import DaemonProcess, twilio_env, wait_until

MESSAGES = 240


def _due_burst(daemon: DaemonProcess) -> list[str]:
    """``MESSAGES`` SMS due now in the daemon's database, one per phone; the phones."""
    db = migrated_database(daemon.db_path)
    now = datetime.now(UTC)
    phones = [f"+861380013{n:04d}" for n in range(MESSAGES)]
    insert(db, *(planned(f"k-{n}", due_at=now, recipient=p) for n, p in enumerate(phones)), now=now)
    db.dispose()
    return phones


def _slow_sends(twilio: FakeTwilioServer, **more: str) -> dict[str, str]:
    """Four calls in flight per process, 0.1 s each, small claims: the burst takes seconds,
    long enough for a worker to start and take its share."""
    twilio.latency = 0.1
    return twilio_env(
        twilio,
        CAREBOT_DISPATCH__PROCESSES="2",
        CAREBOT_TWILIO__CONCURRENCY="4",
        CAREBOT_DISPATCH__BATCH_SIZE="8",
        **more,
    )


def _workers(pid: int) -> list[int]:
    """The dispatch workers among ``pid``'s children (not multiprocessing's resource tracker)."""
    children = []
    # Per thread: the daemon starts a worker again from a worker thread of its own.
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += (task / "children").read_text().split()
        except FileNotFoundError:
            continue
    found = []
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            found.append(int(child))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is not running.
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"


def _sent_lines(daemon: DaemonProcess) -> list[str]:
    text = daemon.stderr_path.read_text(encoding="utf-8")
    return [line for line in text.splitlines() if "action=notification_sent" in line]


def test_two_processes_share_a_burst_and_send_each_message_once(
    daemon_factory: Any, twilio_server: FakeTwilioServer
) -> None:
    daemon = daemon_factory(**_slow_sends(twilio_server))
    phones = _due_burst(daemon)
    daemon.start()
    assert daemon.proc is not None
    assert wait_until(lambda: len(_workers(daemon.proc.pid)) == 1, timeout=20)
    (worker,) = _workers(daemon.proc.pid)
    assert "dispatch:  2 sending processes" in daemon.stdout()

    assert twilio_server.wait_for(MESSAGES, timeout=60), len(twilio_server.requests)
    counts = Counter(r["To"] for r in twilio_server.requests)
    assert set(counts) == set(phones) and max(counts.values()) == 1
    assert wait_until(
        lambda: (
            daemon.query("select count(*) from notifications where status = 'sent'")
            == [(MESSAGES,)]
        ),
        timeout=20,
    )
    # Both processes sent: the worker's log lines name it.
    assert wait_until(lambda: len(_sent_lines(daemon)) == MESSAGES, timeout=10)
    by_worker = Counter("worker=dispatch-1" in line for line in _sent_lines(daemon))
    assert by_worker[True] > 0 and by_worker[False] > 0, by_worker

    assert daemon.stop() == 0
    assert not _alive(worker)


def test_a_killed_worker_is_started_again_and_its_messages_are_not_lost(
    daemon_factory: Any, twilio_server: FakeTwilioServer
) -> None:
    daemon = daemon_factory(
        **_slow_sends(
            twilio_server,
            CAREBOT_DISPATCH__CLAIM_LEASE_SECONDS="3",
            CAREBOT_DISPATCH__SEND_LEASE_SECONDS="4",
            CAREBOT_DISPATCH__REAPER_SECONDS="1",
        )
    )
    phones = _due_burst(daemon)
    daemon.start()
    assert daemon.proc is not None
    assert wait_until(lambda: len(_workers(daemon.proc.pid)) == 1, timeout=20)
    (first,) = _workers(daemon.proc.pid)
    # Killed once it is sending.
    assert wait_until(
        lambda: any("worker=dispatch-1" in line for line in _sent_lines(daemon)), timeout=20
    )
    os.kill(first, signal.SIGKILL)

    assert wait_until(
        lambda: [pid for pid in _workers(daemon.proc.pid) if pid != first], timeout=20
    ), "the worker was not started again"
    assert "action=worker_restarted" in daemon.stderr_path.read_text(encoding="utf-8")
    assert wait_until(
        lambda: (
            daemon.query("select count(*) from notifications where status = 'sent'")
            == [(MESSAGES,)]
        ),
        timeout=60,
    ), daemon.query("select status, count(*) from notifications group by status")
    counts = Counter(r["To"] for r in twilio_server.requests)
    assert set(counts) == set(phones)
    # A message in flight when the worker died may have reached the provider; the in-doubt
    # lookup finds it there, so nothing is sent twice.
    assert max(counts.values()) == 1, [p for p, c in counts.items() if c > 1]


def test_a_worker_whose_daemon_was_killed_stops_on_its_own(
    daemon_factory: Any, twilio_server: FakeTwilioServer
) -> None:
    daemon = daemon_factory(**twilio_env(twilio_server, CAREBOT_DISPATCH__PROCESSES="2"))
    daemon.start()
    assert daemon.proc is not None
    assert wait_until(lambda: len(_workers(daemon.proc.pid)) == 1, timeout=20)
    (worker,) = _workers(daemon.proc.pid)
    daemon.kill()
    assert wait_until(lambda: not _alive(worker), timeout=10)
