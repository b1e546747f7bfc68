"""The daemon: the HTTP server and the periodic jobs on one event loop, stopped gracefully.

APScheduler runs only fixed periodic jobs (dispatch tick, lease reaper, rules hot reload, WAL
checkpoint, one job per watcher); the schedule of messages lives in the database, never in the
job store.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from starlette.applications import Starlette

from carebot.runtime import Runtime
from carebot.store import housekeeping
from carebot.watchers import Watcher
from carebot.web.app import create_app
from carebot.workers import WorkerProcesses

__all__ = ["Daemon"]

logger = logging.getLogger(__name__)

# How long a stopping daemon waits for in-flight sends before it leaves them to the reaper.
SHUTDOWN_GRACE_SECONDS = 20.0
# How often the rules and templates folders are polled for edits.
RELOAD_SECONDS = 2.0
# The watchers a declared, changed or ended disruption concerns (their ``name``).
RESCAN_ON_DISRUPTION = ("disruptions", "restock")
# How often the dispatch workers (``dispatch.processes``) are checked, and a dead one restarted.
WORKERS_CHECK_SECONDS = 5.0


class Daemon:
    """``carebot run``: serve webhooks and send what falls due until told to stop."""

    def __init__(self, runtime: Runtime, *, workers: WorkerProcesses | None = None) -> None:
        self.runtime = runtime
        # The extra sending processes, started and stopped with the daemon (``carebot run``).
        self.workers = workers
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._tick_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Set by an ingest that asked for a dispatch, cleared by the dispatch before it claims:
        # under load, a burst of ingests wakes the dispatcher once and it claims them together.
        self._wake_pending = False
        self._stopping = False
        # Watchers asked to scan again while a scan of theirs was running.
        self._rescan: set[str] = set()
        runtime.pipeline.on_scheduled = self._on_scheduled
        runtime.pipeline.on_disruption = self._on_disruption
        self.reloader = runtime.rules_reloader()

    def _on_scheduled(self, due_at: datetime) -> None:
        """Called from the ingesting thread: wake the dispatcher if the new row is due now."""
        if self._loop is None or due_at > self.runtime.clock.now() or self._wake_pending:
            return
        self._wake_pending = True
        self._loop.call_soon_threadsafe(self.wake)

    def _on_disruption(self) -> None:
        """Called from the ingesting thread: a disruption changed, so its watchers scan now
        (parcels at risk, stock-up advice), not an interval later."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.rescan, RESCAN_ON_DISRUPTION)

    def rescan(self, names: tuple[str, ...]) -> None:
        """Run these watchers' jobs at once (a running scan is followed by one more)."""
        for name in names:
            self._rescan.add(name)
            job = self.scheduler.get_job(f"watcher:{name}")
            if job is not None:
                job.modify(next_run_time=datetime.now(UTC))

    def wake(self) -> None:
        if self._tick_lock.locked():
            # A drain is running: it sees ``_wake_pending`` when its batch is done and goes
            # round again. Running the job now would only be skipped (and logged as such).
            return
        job = self.scheduler.get_job("dispatch")
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    async def dispatch_tick(self) -> None:
        # A stopping scheduler cancels the jobs it runs; a send must not be cut off between
        # the provider call and recording it, so the drain runs in a task of its own that the
        # lifespan waits for (through the tick lock). The job itself just ends (``_job``).
        await asyncio.shield(asyncio.ensure_future(self._drain()))

    async def _drain(self) -> None:
        async with self._tick_lock:
            # Drain full batches at once (09:00 after quiet hours can bring thousands), and
            # what ingests committed while a batch was being sent; a stopping daemon finishes
            # the batch in hand and claims no more.
            while not self._stopping:
                self._wake_pending = False
                report = await self.runtime.dispatcher.run_once()
                if report.claimed < self.runtime.dispatcher.claim_limit and not (
                    self._wake_pending
                ):
                    break

    async def workers_tick(self) -> None:
        assert self.workers is not None
        await asyncio.to_thread(self.workers.check)

    async def reap_tick(self) -> None:
        await self.runtime.dispatcher.reap()

    async def reload_tick(self) -> None:
        # Reading and rendering the rules is blocking work: keep it off the event loop.
        await asyncio.to_thread(self.reloader.poll)

    async def watch_tick(self, watcher: Watcher) -> None:
        """Run one scan and ingest what it found; database work stays off the event loop."""
        while True:
            self._rescan.discard(watcher.name)
            await asyncio.to_thread(self._watch, watcher)
            if watcher.name not in self._rescan or self._stopping:
                return

    def _watch(self, watcher: Watcher) -> None:
        try:
            events = watcher.scan(now=self.runtime.clock.now())
            for event in events:
                self.runtime.pipeline.ingest(event, source=watcher.source)
        except Exception:
            # One bad scan must not stop the job: the next tick tries again.
            logger.exception(
                "watcher failed", extra={"action": "watcher_failed", "watcher": watcher.name}
            )
            return
        if events:
            logger.info(
                "watcher found events",
                extra={"action": "watcher_scan", "watcher": watcher.name, "events": len(events)},
            )

    async def checkpoint_tick(self) -> None:
        result = await asyncio.to_thread(self.runtime.db.checkpoint)
        if result is None:
            return
        extra = {
            "action": "wal_checkpoint",
            "log_frames": result.log_frames,
            "checkpointed": result.checkpointed,
        }
        if result.busy:
            # Not an error: others held the database past the checkpoint's short wait.
            logger.warning(
                "WAL checkpoint incomplete: readers or writers were busy; trying again next time",
                extra=extra,
            )
        else:
            logger.info("WAL checkpointed", extra=extra)

    async def housekeeping_tick(self) -> None:
        retention = timedelta(days=self.runtime.settings.dispatch.retention_days)

        def purge() -> housekeeping.PurgeReport:
            with self.runtime.db.transaction() as session:
                return housekeeping.purge_before(
                    session, cutoff=self.runtime.clock.now() - retention
                )

        report = await asyncio.to_thread(purge)
        logger.info(
            "housekeeping done",
            extra={
                "action": "housekeeping",
                "notifications": report.notifications,
                "events": report.events,
                "rejected_payloads": report.rejected_payloads,
            },
        )

    def _job(self, job_id: str, tick: Callable[..., Awaitable[None]]) -> Callable[..., Any]:
        """``tick`` as a periodic job: counted in the metrics; an error is logged with the
        job's name and the next run tries again; a run cut short by a stopping daemon ends
        quietly (the daemon waits for what must finish, see ``dispatch_tick``)."""
        metrics = self.runtime.metrics

        async def run(*args: Any) -> None:
            try:
                await tick(*args)
            except asyncio.CancelledError:
                if not self._stopping:
                    raise
                logger.info(
                    "job stopped with the daemon", extra={"action": "job_stopped", "job": job_id}
                )
            except Exception:
                metrics.job_failures.labels(job_id).inc()
                logger.exception(
                    "periodic job failed", extra={"action": "job_failed", "job": job_id}
                )
            finally:
                metrics.job_runs.labels(job_id).inc()

        return run

    def _add_jobs(self) -> None:
        dispatch = self.runtime.settings.dispatch
        common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        self.scheduler.add_job(
            self._job("dispatch", self.dispatch_tick),
            "interval",
            seconds=dispatch.tick_seconds,
            id="dispatch",
            next_run_time=datetime.now(UTC),
            **common,
        )
        self.scheduler.add_job(
            self._job("reaper", self.reap_tick),
            "interval",
            seconds=dispatch.reaper_seconds,
            id="reaper",
            next_run_time=datetime.now(UTC),
            **common,
        )
        self.scheduler.add_job(
            self._job("rules_reload", self.reload_tick),
            "interval",
            seconds=RELOAD_SECONDS,
            id="rules_reload",
            **common,
        )
        for watcher in self.runtime.watchers:
            self.scheduler.add_job(
                self._job(f"watcher:{watcher.name}", self.watch_tick),
                "interval",
                args=[watcher],
                seconds=watcher.interval.total_seconds(),
                id=f"watcher:{watcher.name}",
                # A scan at start: what fell due while the daemon was down is found now.
                next_run_time=datetime.now(UTC),
                **common,
            )
        self.scheduler.add_job(
            self._job("housekeeping", self.housekeeping_tick),
            "interval",
            seconds=dispatch.housekeeping_seconds,
            id="housekeeping",
            **common,
        )
        if self.workers is not None and self.workers.count:
            self.scheduler.add_job(
                self._job("workers", self.workers_tick),
                "interval",
                seconds=WORKERS_CHECK_SECONDS,
                id="workers",
                **common,
            )
        if self.runtime.db.dialect == "sqlite":
            self.scheduler.add_job(
                self._job("wal_checkpoint", self.checkpoint_tick),
                "interval",
                seconds=dispatch.checkpoint_seconds,
                id="wal_checkpoint",
                **common,
            )

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        self._add_jobs()
        self.scheduler.start()
        logger.info("scheduler started", extra={"action": "scheduler_started"})
        if self.workers is not None:
            self.workers.start()
        try:
            yield
        finally:
            self._stopping = True
            self.scheduler.shutdown(wait=False)
            # The workers finish their batches in hand while this process finishes its own.
            workers_stopped = asyncio.ensure_future(
                asyncio.to_thread(self.workers.stop, SHUTDOWN_GRACE_SECONDS)
                if self.workers is not None
                else asyncio.sleep(0)
            )
            try:
                # Let an in-flight tick finish recording what it sent; past the grace period
                # its rows are left to the reaper of the next daemon (never lost).
                await asyncio.wait_for(self._tick_lock.acquire(), SHUTDOWN_GRACE_SECONDS)
            except TimeoutError:
                logger.warning("stopping with sends in flight", extra={"action": "stop_timeout"})
            await workers_stopped
            await self.runtime.aclose()
            logger.info("stopped", extra={"action": "daemon_stopped"})

    def app(self) -> Starlette:
        return create_app(self.runtime, lifespan=self.lifespan)

    async def serve(self) -> None:
        http = self.runtime.settings.http
        config = uvicorn.Config(
            self.app(),
            host=http.host,
            port=http.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
            # Idle keep-alive connections are closed; past the limit new requests get 503.
            # A stalled request body is cut off by the app (carebot.web.limits).
            timeout_keep_alive=max(1, round(http.keep_alive_seconds)),
            limit_concurrency=http.limit_concurrency,
            h11_max_incomplete_event_size=16_384,
        )
        if threading.current_thread() is threading.main_thread():
            # uvicorn re-raises the signal that stopped it once it has shut down; after a
            # graceful stop the re-raised SIGTERM should find nothing left to do (exit 0).
            signal.signal(signal.SIGTERM, _stopped)
        # Everything loaded so far (modules, rules, templates, compiled statements) lives as
        # long as the process: keep it out of the collector's way, or every full collection
        # walks it again and stalls requests for tens of milliseconds.
        gc.freeze()
        await uvicorn.Server(config).serve()


def _stopped(signum: int, frame: object) -> None:
    """SIGTERM after uvicorn's graceful shutdown: already stopped, nothing to do."""
