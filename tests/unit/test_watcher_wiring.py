"""The watchers are one list, configured from settings and run by the daemon as interval jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from support.core import make_runtime

from carebot.clock import VirtualClock
from carebot.daemon import Daemon
from carebot.events import parse_event
from carebot.settings import Settings
from carebot.store.database import Database
from carebot.store.models import EventRow
from carebot.watchers import LateShipments, StalledShipments, build_watchers


def test_stall_times_and_the_interval_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREBOT_WATCHERS__STALL_AFTER_HOURS", "36")
    monkeypatch.setenv("CAREBOT_WATCHERS__CARRIER_STALL_HOURS", '{"SF Express": 24, "YTO": 72}')
    monkeypatch.setenv("CAREBOT_WATCHERS__INTERVAL_MINUTES", "5")
    settings = Settings(_env_file=None)
    watchers = build_watchers(settings=settings, db=Database(f"sqlite:///{tmp_path / 'w.db'}"))
    stalled = next(w for w in watchers if isinstance(w, StalledShipments))
    assert stalled.threshold("SF Express") == timedelta(hours=24)
    assert stalled.threshold("sf-express") == timedelta(hours=24)
    assert stalled.threshold("YTO") == timedelta(hours=72)
    assert stalled.threshold("ZTO") == timedelta(hours=36)
    assert stalled.interval == timedelta(minutes=5)
    assert any(isinstance(w, LateShipments) for w in watchers)
    assert {w.source for w in watchers} >= {"watcher:stalled_shipments", "watcher:late_shipments"}


def test_a_non_positive_carrier_stall_time_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAREBOT_WATCHERS__CARRIER_STALL_HOURS", '{"SF Express": 0}')
    with pytest.raises(ValueError, match="SF Express"):
        Settings(_env_file=None)


def test_the_daemon_runs_each_watcher_as_one_fixed_interval_job(tmp_path: Path) -> None:
    runtime, _ = make_runtime(tmp_path, clock=VirtualClock(datetime(2026, 11, 20, tzinfo=UTC)))
    daemon = Daemon(runtime)
    daemon._add_jobs()
    for watcher in runtime.watchers:
        job = daemon.scheduler.get_job(f"watcher:{watcher.name}")
        assert job is not None, watcher.name
        assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (1, True, None)
        assert job.trigger.interval == watcher.interval
        assert job.args == (watcher,)


def test_a_daemon_tick_ingests_what_the_watcher_found_under_its_own_source(
    tmp_path: Path,
) -> None:
    start = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    clock = VirtualClock(start)
    runtime, _ = make_runtime(tmp_path, clock=clock)
    runtime.pipeline.ingest(
        parse_event(
            {
                "id": "evt-shipped",
                "type": "order.shipped",
                "occurred_at": start.isoformat(),
                "order": {"id": "1001", "customer": {"id": "c-42", "phone": "+8613800138000"}},
                "shipment": {"id": "s-1", "tracking_number": "SF1"},
            }
        )
    )
    stalled = next(w for w in runtime.watchers if isinstance(w, StalledShipments))
    daemon = Daemon(runtime)
    clock.set(start + timedelta(hours=49))
    daemon._watch(stalled)
    daemon._watch(stalled)  # a second tick finds the same stall: stored once
    with runtime.db.transaction() as session:
        stored = session.execute(
            select(EventRow.source, EventRow.event_id).where(EventRow.type == "shipment.stalled")
        ).all()
    assert stored == [("watcher:stalled_shipments", "stalled:s-1")]
