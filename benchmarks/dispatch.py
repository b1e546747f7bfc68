"""Dispatch: messages per second to a local Twilio-compatible server and a real SMTP server,
each answering after 20 ms, through the real dispatcher, twilio client and aiosmtplib.

    python benchmarks/dispatch.py [--messages 2000] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import func, select, update

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fill import fill

from carebot.clock import SystemClock
from carebot.runtime import build_runtime
from carebot.settings import Settings
from carebot.store.database import Database
from carebot.store.models import NotificationRow
from carebot.testing.twilio_server import DEFAULT_ACCOUNT_SID, FakeTwilioServer

REPO = Path(__file__).resolve().parent.parent


class SlowSMTP:
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.latency)
        self.received += 1
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def drain(runtime: Any, total: int) -> float:
    started = time.perf_counter()
    while True:
        report = await runtime.dispatcher.run_once()
        if report.claimed == 0:
            with runtime.db.transaction() as session:
                left = session.scalar(
                    select(func.count()).where(NotificationRow.status == "scheduled")
                )
            if not left:
                break
            await asyncio.sleep(0.01)
    return time.perf_counter() - started


def run(channel: str, messages: int, latency: float, tmp: Path) -> tuple[float, int]:
    db_url = f"sqlite:///{tmp / f'{channel}.db'}"
    db = Database(db_url)
    db.upgrade()
    fill(db, messages, due=datetime.now(UTC))
    if channel == "email":
        with db.transaction() as session:
            session.execute(
                update(NotificationRow).values(channel="email", recipient="care@example.com")
            )
    smtp = SlowSMTP(latency)
    controller = Controller(smtp, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        with FakeTwilioServer(auth_token="test-token", latency=latency) as twilio:
            settings = Settings(
                database_url=db_url,
                rules_dir=REPO / "rules",
                templates_dir=REPO / "message_templates",
                quiet_hours="none",
                caps={"sms_per_day": 1_000_000, "email_per_day": 1_000_000},
                twilio={
                    "account_sid": DEFAULT_ACCOUNT_SID,
                    "auth_token": "test-token",
                    "from_number": "+15005550006",
                    "base_url": twilio.base_url,
                },
                smtp={
                    "host": "127.0.0.1",
                    "port": controller.port,
                    "sender": "care@shop.example",
                    "starttls": False,
                },
            )
            runtime = build_runtime(settings, clock=SystemClock(), db=db)
            seconds = asyncio.run(drain(runtime, messages))
            delivered = len(twilio.accepted) if channel == "sms" else smtp.received
    finally:
        controller.stop()
    return seconds, delivered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()
    latency_ms = args.latency * 1000
    print(f"dispatch: {args.messages} messages per channel, provider latency {latency_ms:.0f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        for channel in ("sms", "email"):
            seconds, delivered = run(channel, args.messages, args.latency, Path(tmp))
            rate = delivered / seconds
            print(
                f"  {channel:<6} {delivered:>6} delivered in {seconds:6.1f} s = {rate:7.0f} msg/s"
            )


if __name__ == "__main__":
    main()
