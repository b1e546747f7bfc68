"""Pipeline throughput: N `order.delivered` events through `carebot simulate` vs APScheduler.

Both sides at the same durability: SQLite in WAL mode with synchronous=NORMAL (carebot's only
setting, simulate included; the peer's engine is tuned the same way).

carebot stores each event, plans the delivered notice and a follow-up three days later, sends
the notice through the capturing channel and keeps the follow-up scheduled, all in one SQLite
file (WAL). The peer, measured in the same run, is what people usually build instead:
APScheduler 3.11 with one `SQLAlchemyJobStore` date job per notification on SQLite tuned with
WAL, running the delivered-notice jobs and keeping the follow-up jobs.

    python benchmarks/pipeline_throughput.py [--sizes 2000,5000,20000] [--json-out FILE]

Targets (issue 19): 20,000 events within 60 s and under 300 MB peak RSS on the 2-core machine.
A table per size is printed; ``--json-out`` also writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import run_child

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
START = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)

PEER = r"""
import sys, threading, time
from datetime import UTC, datetime, timedelta
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import create_engine, event

path, count = sys.argv[1], int(sys.argv[2])
engine = create_engine(f"sqlite:///{path}")

@event.listens_for(engine, "connect")
def _tune(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()

sent = 0
done = threading.Event()
lock = threading.Lock()

def send_notice(order_id, phone, body):
    global sent
    with lock:
        sent += 1
        if sent == count:
            done.set()

def follow_up(order_id, phone, body):
    pass

scheduler = BackgroundScheduler(
    jobstores={"default": SQLAlchemyJobStore(engine=engine)},
    executors={"default": ThreadPoolExecutor(10)},
    job_defaults={"misfire_grace_time": None, "coalesce": False},
    timezone=UTC,
)
scheduler.start()
now = datetime.now(UTC)
for n in range(count):
    args = (str(n), f"+86138{n:08d}", f"order {n} delivered")
    scheduler.add_job(send_notice, "date", run_date=now, args=args, id=f"delivered-{n}")
    later = now + timedelta(days=3)
    scheduler.add_job(follow_up, "date", run_date=later, args=args, id=f"follow-up-{n}")
if not done.wait(timeout=3600):
    sys.exit("peer did not send every notice")
scheduler.shutdown(wait=True)
print(sent)
"""


def write_events(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            at = START + timedelta(seconds=n)
            event = {
                "id": f"evt-{n}-delivered",
                "type": "order.delivered",
                "occurred_at": at.isoformat(),
                "order": {
                    "id": str(n),
                    "customer": {"id": f"c-{n}", "phone": f"+86138{n:08d}", "locale": "zh-CN"},
                    "items": [{"sku": "MILK-900G", "title": "婴儿配方奶粉 900g", "quantity": 1}],
                },
                "shipment": {"id": f"s-{n}", "carrier": "SF Express", "tracking_number": f"SF{n}"},
            }
            out.write(json.dumps(event, ensure_ascii=False) + "\n")


def measure(count: int) -> dict[str, dict[str, float]]:
    """Both sides on ``count`` events, in this order, in one run."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        events = tmp_path / "events.jsonl"
        write_events(events, count)
        until = (START + timedelta(seconds=count + 60)).isoformat()
        env = {
            "CAREBOT_RULES_DIR": str(HERE / "rules"),
            "CAREBOT_TEMPLATES_DIR": str(REPO / "message_templates"),
            "CAREBOT_QUIET_HOURS": "none",
        }
        carebot = run_child(
            [str(HERE / "_simulate_entry.py"), str(events), "--json", "--until", until],
            env=env,
            cwd=tmp_path,
        )
        records = [json.loads(line) for line in carebot.output.splitlines()]
        sent = sum(1 for r in records if r["status"] == "sent")
        pending = sum(1 for r in records if r["status"] == "scheduled")
        assert sent == count and pending == count, (sent, pending)

        peer_script = tmp_path / "peer.py"
        peer_script.write_text(PEER, encoding="utf-8")
        peer = run_child([str(peer_script), str(tmp_path / "peer.db"), str(count)])
        assert int(peer.output.strip()) == count
    return {
        name: {
            "seconds": run.seconds,
            "events_per_second": count / run.seconds,
            "peak_rss_mb": run.peak_rss_mb,
        }
        for name, run in (("carebot", carebot), ("apscheduler", peer))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,5000,20000")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    results = {}
    for count in (int(size) for size in args.sizes.split(",")):
        results[count] = figures = measure(count)
        print(f"pipeline throughput: {count} order.delivered events (WAL, synchronous=NORMAL)")
        print(f"{'':<34}{'wall s':>10}{'events/s':>12}{'peak RSS MB':>14}")
        for name, label in (
            ("carebot", "carebot simulate"),
            ("apscheduler", "APScheduler + SQLAlchemyJobStore"),
        ):
            f = figures[name]
            print(
                f"{label:<34}{f['seconds']:>10.2f}{f['events_per_second']:>12.0f}"
                f"{f['peak_rss_mb']:>14.1f}"
            )
    if 20_000 in results:
        mine = results[20_000]["carebot"]
        met = mine["seconds"] <= 60 and mine["peak_rss_mb"] < 300
        print(f"target (20,000 events: wall <= 60 s, RSS < 300 MB): {'met' if met else 'NOT met'}")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
