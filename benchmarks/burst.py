"""The morning burst: N notices due at one instant, carebot against APScheduler, same run.

carebot: a daemon (``carebot run``, SQLite file, WAL, synchronous=NORMAL) over N scheduled
notices all due at the same instant, sending to a local Twilio-compatible server that answers
each call after ``--latency`` (20 ms), through the real twilio client. The peer, measured in
the same run against its own server of the same kind: APScheduler 3.11 with one
``SQLAlchemyJobStore`` (SQLite file, WAL, synchronous=NORMAL: the same durability) date job
per message and its default ThreadPoolExecutor of ten threads, each job calling the twilio
client. With ``--channel email`` both send to aiosmtpd on loopback with the same latency
(carebot over its SMTP connection pool, the peer with smtplib, a connection per message).

Lateness is the time from the due instant to the provider answering a message; the rate is
N divided by the lateness of the last one.

    python benchmarks/burst.py [--messages 20000] [--channel sms|email] [--latency 0.02]
        [--only carebot|peer] [--env CAREBOT_X=value ...]
        [--processes 1,2] [--postgres postgresql+psycopg://user:pw@host/db --daemons 3]

With ``--postgres`` carebot's schedule is a fresh database created next to the one named
(dropped afterwards), shared by ``--daemons`` daemons. ``--processes 1,2`` (the default)
measures carebot once per value of ``dispatch.processes``: the daemon alone, then the daemon
and one dispatch worker process; a row's RSS is the sum of its processes' peaks.

Targets (issue 20): carebot at least twice the peer's rate; the last of 20,000 at the
provider within 60 s of the due instant; carebot's peak RSS under 300 MB. It prints a table
and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, make_url, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fill import fill

from carebot.store.database import Database
from carebot.testing.twilio_server import DEFAULT_ACCOUNT_SID, FakeTwilioServer

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TOKEN = "test-token"
FROM = "+15005550006"

PEER = r"""
import json, resource, smtplib, sys, threading, time
from datetime import UTC, datetime
from email.message import EmailMessage
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import create_engine, event
from twilio.rest import Client

path, count, due, channel, target = sys.argv[1:6]
count, due = int(count), float(due)
engine = create_engine(f"sqlite:///{path}")

@event.listens_for(engine, "connect")
def _tune(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()

client = Client("%(sid)s", "%(token)s")
client.edge = None
client.region = None
client.api.base_url = target
host, _, port = target.partition(":")
sent = 0
errors = 0
lock = threading.Lock()
done = threading.Event()

def count_one(ok):
    global sent, errors
    with lock:
        if ok:
            sent += 1
        else:
            errors += 1
        if sent + errors == count:
            done.set()

def send_sms(order_id, phone, body):
    try:
        client.messages.create(to=phone, from_="%(from_)s", body=body)
    except Exception:
        count_one(False)
        raise
    count_one(True)

def send_email(order_id, address, body):
    msg = EmailMessage()
    msg["From"] = "care@shop.example"
    msg["To"] = address
    msg["Subject"] = f"Order {order_id} shipped"
    msg.set_content(body)
    try:
        with smtplib.SMTP(host, int(port), timeout=30) as smtp:
            smtp.send_message(msg)
    except Exception:
        count_one(False)
        raise
    count_one(True)

scheduler = BackgroundScheduler(
    jobstores={"default": SQLAlchemyJobStore(engine=engine)},
    executors={"default": ThreadPoolExecutor(10)},
    job_defaults={"misfire_grace_time": None, "coalesce": False},
    timezone=UTC,
)
scheduler.start(paused=True)
run_date = datetime.fromtimestamp(due, UTC)
job = send_sms if channel == "sms" else send_email
for n in range(count):
    to = f"+86138{n:08d}" if channel == "sms" else f"c{n}@example.com"
    body = f"【carebot】您的订单 {n} 已由顺丰发出，运单号 SF{n}。"
    scheduler.add_job(job, "date", run_date=run_date, args=(str(n), to, body), id=f"shipped-{n}")
ready = time.time()
time.sleep(max(0.0, due - ready))
scheduler.resume()
if not done.wait(timeout=3600):
    sys.exit("peer did not send every notice")
scheduler.shutdown(wait=True)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"sent": sent, "errors": errors, "ready": ready, "peak_rss_mb": peak}))
"""


@dataclass
class Result:
    name: str
    sent: int
    rate: float
    p50: float
    p99: float
    last: float
    peak_rss_mb: float
    note: str = ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Arrivals:
    """When each message reached the provider (wall-clock seconds)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.times.append(time.time())

    def watch_twilio(self, server: FakeTwilioServer, count: int) -> threading.Thread:
        """Record the moment the server's accepted count passes each number up to ``count``."""

        def run() -> None:
            for n in range(1, count + 1):
                if not server.wait_for(n, timeout=1800, accepted=True):
                    return
                self.add()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


class SlowSMTP:
    """An aiosmtpd handler that answers DATA after ``latency`` and records the moment."""

    def __init__(self, latency: float, arrivals: Arrivals) -> None:
        self.latency = latency
        self.arrivals = arrivals

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.latency)
        self.arrivals.add()
        return "250 OK"


class Provider:
    """The provider for one contestant: a Twilio-compatible server or aiosmtpd."""

    def __init__(self, channel: str, latency: float, count: int) -> None:
        self.channel = channel
        self.count = count
        self.arrivals = Arrivals()
        self.twilio: FakeTwilioServer | None = None
        self.smtp: Controller | None = None
        self.watcher: threading.Thread | None = None
        if channel == "sms":
            self.twilio = FakeTwilioServer(auth_token=TOKEN, latency=latency).start()
            self.watcher = self.arrivals.watch_twilio(self.twilio, count)
        else:
            self.smtp = Controller(
                SlowSMTP(latency, self.arrivals), hostname="127.0.0.1", port=free_port()
            )
            self.smtp.start()

    @property
    def target(self) -> str:
        if self.twilio is not None:
            return self.twilio.base_url
        assert self.smtp is not None
        return f"127.0.0.1:{self.smtp.port}"

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.arrivals.times) >= self.count:
                return True
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        if self.twilio is not None:
            self.twilio.stop()
        if self.smtp is not None:
            self.smtp.stop()


def summarize(name: str, due: float, arrivals: list[float], rss: float, note: str = "") -> Result:
    late = sorted(max(0.0, t - due) for t in arrivals)
    if not late:
        return Result(name, 0, 0.0, float("nan"), float("nan"), float("nan"), rss, note)

    def pct(p: float) -> float:
        return late[min(len(late) - 1, int(len(late) * p))]

    last = late[-1]
    return Result(name, len(late), len(late) / last if last else 0.0, pct(0.5), pct(0.99), last,
                  rss, note)  # fmt: skip


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (a daemon's dispatch workers)."""
    children = [
        c
        for task in Path(f"/proc/{pid}/task").glob("*")
        for c in (task / "children").read_text().split()
    ]
    return [pid, *(int(child) for child in children)]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def database_url(args: argparse.Namespace, tmp: Path) -> Iterator[str]:
    """A SQLite file, or with ``--postgres`` a fresh PostgreSQL database dropped afterwards."""
    if not args.postgres:
        yield f"sqlite:///{tmp / 'carebot.db'}"
        return
    admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    name = f"carebot_burst_{os.getpid()}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def run_carebot(args: argparse.Namespace, tmp: Path, processes: int) -> Result:
    tmp.mkdir(exist_ok=True)
    provider = Provider(args.channel, args.latency, args.messages)
    try:
        with database_url(args, tmp) as db_url:
            return _run_carebot(args, tmp, provider, db_url, processes)
    finally:
        provider.stop()


def _run_carebot(
    args: argparse.Namespace, tmp: Path, provider: Provider, db_url: str, processes: int
) -> Result:
    db = Database(db_url)
    db.upgrade()
    due = datetime.now(UTC) + timedelta(seconds=args.lead)
    fill(db, args.messages, due=due)
    if args.channel == "email":
        with db.transaction() as session:
            session.execute(
                text(
                    "UPDATE notifications SET channel = 'email', "
                    "recipient = 'c' || id || '@example.com', "
                    "dedupe_key = dedupe_key || '-email'"
                )
            )
    db.dispose()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CAREBOT_")},
        "CAREBOT_DATABASE_URL": db_url,
        "CAREBOT_RULES_DIR": str(REPO / "rules"),
        "CAREBOT_TEMPLATES_DIR": str(REPO / "message_templates"),
        "CAREBOT_QUIET_HOURS": "none",
        "CAREBOT_TWILIO__ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
        "CAREBOT_TWILIO__AUTH_TOKEN": TOKEN,
        "CAREBOT_TWILIO__FROM_NUMBER": FROM,
        "CAREBOT_SMTP__SENDER": "care@shop.example",
        "CAREBOT_SMTP__STARTTLS": "false",
        "CAREBOT_DISPATCH__PROCESSES": str(processes),
        **dict(item.split("=", 1) for item in args.env),
    }
    if args.channel == "sms":
        env["CAREBOT_TWILIO__BASE_URL"] = provider.target
    else:
        host, _, smtp_port = provider.target.partition(":")
        env["CAREBOT_SMTP__HOST"] = host
        env["CAREBOT_SMTP__PORT"] = smtp_port
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(args.daemons):
            port = free_port()
            log = (tmp / f"daemon-{n}.log").open("wb")
            proc = subprocess.Popen(
                [sys.executable, "-m", "carebot", "run", "--log-level", "WARNING"],
                env={**env, "CAREBOT_HTTP__PORT": str(port)},
                cwd=tmp, stdout=log, stderr=log,
            )  # fmt: skip
            procs.append(proc)
            started = time.monotonic()
            while not _healthy(port):
                if proc.poll() is not None or time.monotonic() - started > 120:
                    raise RuntimeError(f"daemon did not start; see {tmp / f'daemon-{n}.log'}")
                time.sleep(0.2)
        ok = provider.wait(timeout=args.lead + 1800)
        # Each daemon with its dispatch workers: the sum of their peaks (an upper bound).
        rss = max(sum(peak_rss_mb(pid) for pid in process_tree(proc.pid)) for proc in procs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
    note = "" if ok else "did not send every message"
    if provider.twilio is not None:
        duplicates = len(provider.twilio.accepted) - len(
            {m["Body"] + m["To"] for m in provider.twilio.accepted}
        )
        if duplicates:
            note = f"{note} {duplicates} DUPLICATES".strip()
    name = "carebot" if args.daemons == 1 else f"carebot x{args.daemons}"
    if processes > 1:
        name = f"{name} p{processes}"
    return summarize(name, due.timestamp(), provider.arrivals.times, rss, note)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def run_peer(args: argparse.Namespace, tmp: Path) -> Result:
    provider = Provider(args.channel, args.latency, args.messages)
    try:
        script = tmp / "peer.py"
        script.write_text(
            PEER % {"sid": DEFAULT_ACCOUNT_SID, "token": TOKEN, "from_": FROM}, encoding="utf-8"
        )
        # The peer stores one job per message, one INSERT and commit each: give it the time.
        due = time.time() + args.peer_lead
        out = subprocess.run(
            [sys.executable, str(script), str(tmp / "peer.db"), str(args.messages), str(due),
             args.channel, provider.target],
            capture_output=True, text=True, check=False, timeout=args.peer_lead + 3600,
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"peer failed:\n{out.stderr[-3000:]}")
        provider.wait(timeout=10)
        report = json.loads(out.stdout.strip().splitlines()[-1])
        note = ""
        if report["ready"] > due:
            note = f"jobs stored {report['ready'] - due:.1f} s after the due instant"
        if report["errors"]:
            note = f"{note}; {report['errors']} errors".lstrip("; ")
        return summarize("peer", due, provider.arrivals.times, report["peak_rss_mb"], note)
    finally:
        provider.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--channel", choices=("sms", "email"), default="sms")
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--only", choices=("carebot", "peer"))
    parser.add_argument("--lead", type=float, default=15.0, help="seconds before the due instant")
    parser.add_argument("--peer-lead", type=float, default=None)
    parser.add_argument("--postgres", help="a PostgreSQL URL: carebot's schedule goes there")
    parser.add_argument("--daemons", type=int, default=1, help="carebot daemons sharing it")
    parser.add_argument(
        "--processes", default="1,2", help="dispatch.processes values to measure, in turn"
    )
    parser.add_argument("--env", action="append", default=[], help="CAREBOT_X=value for carebot")
    args = parser.parse_args()
    if args.peer_lead is None:
        # Storing 20,000 jobs takes the peer tens of seconds on a small machine.
        args.peer_lead = 10 + args.messages / 250
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.only in (None, "carebot"):
            for processes in (int(n) for n in args.processes.split(",")):
                results.append(run_carebot(args, tmp / f"p{processes}", processes))
        if args.only in (None, "peer"):
            results.append(run_peer(args, tmp))
    latency_ms = args.latency * 1000
    print(
        f"burst: {args.messages:,} {args.channel} due at one instant, provider {latency_ms:.0f} ms"
    )
    print(f"{'':<14}{'sent':>8}{'msg/s':>9}{'p50 s':>9}{'p99 s':>9}{'last s':>9}{'RSS MB':>9}")
    for r in results:
        print(f"{r.name:<14}{r.sent:>8}{r.rate:>9.0f}{r.p50:>9.1f}{r.p99:>9.1f}{r.last:>9.1f}"
              f"{r.peak_rss_mb:>9.0f}  {r.note}")  # fmt: skip
    peer = next((r for r in results if r.name == "peer"), None)
    verdict: dict[str, Any] = {}
    for mine in (r for r in results if r.name.startswith("carebot")):
        targets = {
            "last_within_60s": mine.sent == args.messages and mine.last <= 60,
            "rss_under_300mb": mine.peak_rss_mb < 300,
        }
        if peer is not None:
            targets["twice_peer_rate"] = mine.rate >= 2 * peer.rate
        verdict[mine.name] = targets
        for name, met in targets.items():
            print(f"target {name} ({mine.name}): {'met' if met else 'NOT met'}")
    print(json.dumps({
        "benchmark": "burst", "channel": args.channel, "messages": args.messages,
        "latency": args.latency, "results": [asdict(r) for r in results], "targets": verdict,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
