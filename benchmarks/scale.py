"""Scale: a million pending notifications, and twenty thousand due in the same second.

1. RSS of a running daemon (`carebot run`) over a database with 1,000,000 pending rows.
2. Cost of one dispatch tick's claim query with 1,000,000 pending vs 10,000 pending (none due),
   which the partial index on scheduled rows keeps flat.
3. 20,000 messages due at the same second (09:00 after quiet hours) sent by a daemon to the
   local Twilio-compatible server: all sent, with the lateness distribution (sent_at - due_at).

    python benchmarks/scale.py [--pending 1000000] [--burst 20000]

Targets (issue 8): daemon RSS under 200 MB; tick cost at 1M within 1.5x of 10k; all sent.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fill import fill

from carebot.store import schedule
from carebot.store.database import Database
from carebot.store.models import NotificationRow
from carebot.testing.twilio_server import DEFAULT_ACCOUNT_SID, FakeTwilioServer

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tick_cost(db: Database, *, repeats: int = 200) -> float:
    """Median seconds of one claim (nothing due) — what every idle tick pays."""
    now = datetime.now(UTC)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        with db.transaction() as session:
            schedule.claim_due(
                session, now=now, worker="bench", limit=100, lease=timedelta(minutes=1)
            )
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_daemon(
    db_url: str, tmp: Path, extra: dict[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CAREBOT_")},
        "CAREBOT_DATABASE_URL": db_url,
        "CAREBOT_RULES_DIR": str(REPO / "rules"),
        "CAREBOT_TEMPLATES_DIR": str(REPO / "message_templates"),
        "CAREBOT_HTTP__PORT": str(port),
        "CAREBOT_QUIET_HOURS": "none",
        "CAREBOT_CAPS__SMS_PER_DAY": "1000",
        **extra,
    }
    sink = (tmp / f"daemon-{port}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "carebot", "run", "--log-level", "WARNING"],
                            env=env, cwd=tmp, stdout=sink, stderr=sink)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("daemon did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--burst", type=int, default=20_000)
    args = parser.parse_args()
    far = datetime.now(UTC) + timedelta(days=30)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        small = Database(f"sqlite:///{tmp / 'small.db'}")
        small.upgrade()
        fill(small, 10_000, due=far, spread=timedelta(days=30))
        big_url = f"sqlite:///{tmp / 'big.db'}"
        big = Database(big_url)
        big.upgrade()
        started = time.perf_counter()
        fill(big, args.pending, due=far, spread=timedelta(days=30))
        fill_seconds = time.perf_counter() - started
        small_tick, big_tick = tick_cost(small), tick_cost(big)

        proc, _port = start_daemon(big_url, tmp, {})
        time.sleep(5)  # a few ticks, the reaper and the reload job have run
        daemon_rss = rss_mb(proc.pid)
        proc.terminate()
        proc.wait(timeout=60)

        # The 09:00 burst: every row due at the same second, a little after the daemon starts.
        burst_db_url = f"sqlite:///{tmp / 'burst.db'}"
        burst_db = Database(burst_db_url)
        burst_db.upgrade()
        due = datetime.now(UTC) + timedelta(seconds=20)
        fill(burst_db, args.burst, due=due)
        with FakeTwilioServer(auth_token="test-token") as twilio:
            proc, _port = start_daemon(
                burst_db_url,
                tmp,
                {
                    "CAREBOT_TWILIO__ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
                    "CAREBOT_TWILIO__AUTH_TOKEN": "test-token",
                    "CAREBOT_TWILIO__FROM_NUMBER": "+15005550006",
                    "CAREBOT_TWILIO__BASE_URL": twilio.base_url,
                },
            )
            deadline = time.monotonic() + 1800
            while time.monotonic() < deadline:
                with burst_db.transaction() as session:
                    sent = session.scalar(
                        select(func.count()).where(NotificationRow.status == "sent")
                    )
                if sent == args.burst:
                    break
                time.sleep(1)
            proc.terminate()
            proc.wait(timeout=60)
        with burst_db.transaction() as session:
            lateness = sorted(
                (row.sent_at - row.due_at).total_seconds()
                for row in session.scalars(
                    select(NotificationRow).where(NotificationRow.status == "sent")
                )
                if row.sent_at is not None
            )

    def pct(p: float) -> float:
        return (
            lateness[min(len(lateness) - 1, int(len(lateness) * p))] if lateness else float("nan")
        )

    print(
        f"scale: {args.pending:,} pending (filled in {fill_seconds:.0f} s), burst of {args.burst:,}"
    )
    print(f"  daemon RSS with {args.pending:,} pending:   {daemon_rss:8.1f} MB   (target < 200 MB)")
    print(f"  idle tick claim, 10,000 pending:      {small_tick * 1000:8.2f} ms")
    ratio = big_tick / small_tick
    big_ms = big_tick * 1000
    label = f"idle tick claim, {args.pending:,} pending:"
    print(f"  {label:<38}{big_ms:8.2f} ms   ({ratio:.2f}x; target <= 1.5x)")
    spread = "  ".join(
        f"{name} {pct(p):.1f}"
        for name, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
    )
    print(f"  burst: {len(lateness):,} of {args.burst:,} sent; lateness seconds {spread}")


if __name__ == "__main__":
    main()
