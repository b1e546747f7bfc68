"""Every periodic job runs on a real SQLite daemon with writes going on, and none logs an ERROR.

The WAL checkpoint used to fail on every daemon ("database table is locked"), every five
minutes, with a traceback; here every job runs several times (short intervals by settings)
while webhooks keep writing, the log is read for errors, and the WAL must be folded back.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from carebot.testing.twilio_server import FakeTwilioServer

from .conftest import shipped_event, twilio_env, wait_until

JOBS = {
    "dispatch",
    "reaper",
    "rules_reload",
    "housekeeping",
    "wal_checkpoint",
}


# The forecasting watchers scan hourly whatever the setting (forecasts move in days): at start
# and when a disruption changes, so once within this test.
HOURLY = {"watcher:disruptions", "watcher:restock"}


def _job_counts(url: str, name: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        sample.labels["job"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def test_all_periodic_jobs_run_with_writes_going_on_log_no_error_and_fold_the_wal_back(
    daemon_factory: Any, twilio_server: FakeTwilioServer
) -> None:
    daemon = daemon_factory(
        **twilio_env(twilio_server),
        CAREBOT_LOG_FORMAT="json",
        CAREBOT_CAPS__SMS_PER_DAY="1000",
        CAREBOT_DISPATCH__CHECKPOINT_SECONDS="1",
        CAREBOT_DISPATCH__HOUSEKEEPING_SECONDS="2",
        CAREBOT_DISPATCH__REAPER_SECONDS="0.5",
        CAREBOT_WATCHERS__INTERVAL_MINUTES="0.02",
    )
    daemon.start()
    wal = daemon.db_path.with_name(daemon.db_path.name + "-wal")
    sizes: list[int] = []
    writing = threading.Event()
    writing.set()

    def write() -> None:
        n = 0
        while writing.is_set():
            assert daemon.post(shipped_event(5000 + n, phone=f"+861370{n:07d}")).status_code == 202
            sizes.append(wal.stat().st_size if wal.exists() else 0)
            n += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:

        def every_job_ran_twice() -> bool:
            runs = _job_counts(daemon.url, "carebot_job_runs_total")
            expected = JOBS | {job for job in runs if job.startswith("watcher:")}
            return len(expected) > len(JOBS) and all(
                runs.get(job, 0) >= (1 if job in HOURLY else 2) for job in expected
            )

        assert wait_until(every_job_ran_twice, timeout=60, interval=0.5), [
            (job, runs)
            for job, runs in sorted(_job_counts(daemon.url, "carebot_job_runs_total").items())
            if runs < 2
        ]
    finally:
        writing.clear()
        writer.join(timeout=30)
    assert max(sizes) > 0, "nothing was written to the WAL"
    # With the writes over, the next checkpoint truncates the log.
    assert wait_until(lambda: wal.stat().st_size == 0, timeout=15, interval=0.2), wal.stat()
    assert _job_counts(daemon.url, "carebot_job_failures_total") == {}
    assert daemon.stop() == 0

    records = [
        json.loads(line)
        for line in daemon.stderr_path.read_text(encoding="utf-8").splitlines()
        if line.startswith("{")
    ]
    checkpoints = [r for r in records if r.get("action") == "wal_checkpoint"]
    assert checkpoints and any(r["level"] == "info" for r in checkpoints)
    errors = [r for r in records if r["level"] in ("error", "critical")]
    assert errors == [], errors
    assert "Traceback" not in daemon.stderr_path.read_text(encoding="utf-8")


def test_sigterm_during_a_dispatch_tick_stops_cleanly_and_records_the_send_in_flight(
    daemon_factory: Any, twilio_server: FakeTwilioServer
) -> None:
    twilio_server.latency = 2.0  # the send is in flight when the signal comes
    daemon = daemon_factory(**twilio_env(twilio_server))
    daemon.start()
    assert daemon.post(shipped_event(61, phone="+8613800138061")).status_code == 202
    assert twilio_server.wait_for(1, timeout=20)
    assert daemon.stop() == 0
    log = daemon.stderr_path.read_text(encoding="utf-8")
    assert "Traceback" not in log and "CancelledError" not in log and " ERROR " not in log, log
    assert daemon.query("select status from notifications") == [("sent",)]
    assert len(twilio_server.accepted) == 1
