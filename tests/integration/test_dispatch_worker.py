"""A dispatch worker's loop in process: it sends what falls due, follows template edits as the
daemon does, and stops when told (the process-level promises: tests/acceptance)."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.core import MESSAGE_TEMPLATES, RULES, insert, migrated_database, planned

from carebot import workers
from carebot.channels import ChannelKind, MemoryChannel
from carebot.runtime import build_runtime
from carebot.settings import DispatchSettings, Settings
from carebot.workers import DispatchWorker, WorkerProcesses


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_worker_sends_what_falls_due_with_templates_as_edited_and_stops_when_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers, "RELOAD_SECONDS", 0.2)
    templates = tmp_path / "templates"
    shutil.copytree(MESSAGE_TEMPLATES, templates)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'carebot.db'}",
        rules_dir=RULES,
        templates_dir=templates,
        quiet_hours="none",
        dispatch=DispatchSettings(tick_seconds=0.05),
    )
    db = migrated_database(tmp_path / "carebot.db")
    channels = {kind: MemoryChannel(kind=kind) for kind in ChannelKind}
    runtime = build_runtime(settings, channels=channels, db=db)
    sms = channels[ChannelKind.SMS]
    worker = DispatchWorker(runtime, parent_pid=os.getppid())
    serving = asyncio.create_task(worker.serve())

    now = datetime.now(UTC)
    insert(db, planned("k-1", due_at=now, recipient="+8613800130001"), now=now)
    await _until(lambda: len(sms.sent) == 1)
    assert "EDITED" not in sms.sent[0].body

    edited = templates / "zh-CN" / "shipped.sms.j2"
    edited.write_text("EDITED 订单 {{ order.id }}", encoding="utf-8")
    stat = edited.stat()
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    await asyncio.sleep(0.6)  # three reload polls
    insert(db, planned("k-2", due_at=now, recipient="+8613800130002"), now=now)
    await _until(lambda: len(sms.sent) == 2)
    assert sms.sent[1].body == "EDITED 订单 1001"

    worker.stop()
    await asyncio.wait_for(serving, 5)
    # Stopped: what falls due now waits for another process.
    insert(db, planned("k-3", due_at=now, recipient="+8613800130003"), now=now)
    await asyncio.sleep(0.3)
    assert len(sms.sent) == 2


async def test_a_worker_whose_daemon_is_gone_stops_without_claiming(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'carebot.db'}",
        rules_dir=RULES,
        templates_dir=MESSAGE_TEMPLATES,
        quiet_hours="none",
    )
    db = migrated_database(tmp_path / "carebot.db")
    now = datetime.now(UTC)
    insert(db, planned("k-1", due_at=now), now=now)
    channels = {kind: MemoryChannel(kind=kind) for kind in ChannelKind}
    runtime = build_runtime(settings, channels=channels, db=db)
    # Not this process's parent: as after the daemon was killed and the worker re-parented.
    worker = DispatchWorker(runtime, parent_pid=os.getppid() + 100_000)
    await asyncio.wait_for(worker.serve(), 5)
    assert channels[ChannelKind.SMS].sent == []


def test_workers_stop_gracefully_and_a_check_after_the_stop_starts_none_again(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'carebot.db'}",
        rules_dir=RULES,
        templates_dir=MESSAGE_TEMPLATES,
        quiet_hours="none",
    )
    migrated_database(tmp_path / "carebot.db").dispose()
    processes = WorkerProcesses(settings, count=1, log_level="INFO", log_format="text")
    processes.start()
    (worker,) = processes.processes
    # Once its loop runs (the worker's log lines reach this test's stderr).
    written = ""
    for _ in range(300):
        written += capfd.readouterr().err
        if "action=worker_started" in written:
            break
        time.sleep(0.05)
    assert "action=worker_started worker=dispatch-1" in written
    processes.stop(grace_seconds=30)
    # SIGTERM ends its loop: a clean exit, not a kill.
    assert worker.exitcode == 0
    assert processes.check() == 0 and processes.processes == []
