"""Dispatch workers: the extra sending processes of ``carebot run`` (``dispatch.processes``).

One process sends as fast as one core lets the provider clients run; a worker is a second
(third…) process on the same database that only claims and sends. Claims are atomic on SQLite
and PostgreSQL alike, so a message is still sent once, whichever process claims it. The daemon
keeps everything else: the HTTP server, the reaper, the watchers, housekeeping.

The daemon starts the workers (spawned, not forked: a fork of a running event loop and its
database connections is unsafe), starts again one that died, and stops them with itself; a
worker whose daemon disappears (killed) stops on its own within a tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.process import BaseProcess

from carebot.logs import LogFormat, configure_logging
from carebot.runtime import Runtime
from carebot.settings import Settings

__all__ = ["DispatchWorker", "WorkerProcesses"]

logger = logging.getLogger(__name__)

# How often a worker looks at the rules and templates folders (as the daemon's hot reload).
RELOAD_SECONDS = 2.0


class DispatchWorker:
    """The loop of one worker process: drain what is due, every tick, until told to stop."""

    def __init__(self, runtime: Runtime, *, parent_pid: int) -> None:
        self.runtime = runtime
        self.parent_pid = parent_pid
        self._stop = asyncio.Event()
        # The daemon reloads rules and templates on an edit; a worker's renderer must follow.
        self.reloader = runtime.rules_reloader()

    def stop(self) -> None:
        self._stop.set()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        logger.info("dispatch worker started", extra={"action": "worker_started"})
        tick = self.runtime.settings.dispatch.tick_seconds
        reloaded = loop.time()
        try:
            while not self._stop.is_set():
                if os.getppid() != self.parent_pid:
                    logger.warning(
                        "the daemon is gone; worker stopping", extra={"action": "worker_orphaned"}
                    )
                    break
                await self._drain()
                if loop.time() - reloaded >= RELOAD_SECONDS:
                    reloaded = loop.time()
                    await asyncio.to_thread(self.reloader.poll)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), tick)
        finally:
            await self.runtime.aclose()

    async def _drain(self) -> None:
        """Full batches back to back; a stop finishes the batch in hand and claims no more."""
        dispatcher = self.runtime.dispatcher
        try:
            while not self._stop.is_set():
                report = await dispatcher.run_once()
                if report.claimed < dispatcher.claim_limit:
                    return
        except Exception:
            # As the daemon's dispatch job: the next tick tries again.
            logger.exception("dispatch failed", extra={"action": "job_failed", "job": "dispatch"})


def run_worker(settings: Settings, parent_pid: int, log_level: str, log_format: LogFormat) -> None:
    """A worker process's entry point (spawned by ``WorkerProcesses``)."""
    from carebot.cli_run import event_loop_factory
    from carebot.runtime import build_runtime
    from carebot.store.database import Database

    configure_logging(log_level, log_format, process=multiprocessing.current_process().name)
    runtime = build_runtime(settings, db=Database(settings.database_url))
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(DispatchWorker(runtime, parent_pid=parent_pid).serve())
    logger.info("dispatch worker stopped", extra={"action": "worker_stopped"})


class WorkerProcesses:
    """The daemon's ``count`` dispatch workers: started, watched (``check``), stopped."""

    def __init__(
        self, settings: Settings, *, count: int, log_level: str, log_format: LogFormat
    ) -> None:
        self.settings = settings
        self.count = count
        self.log_level = log_level
        self.log_format = log_format
        self._context = multiprocessing.get_context("spawn")
        self.processes: list[BaseProcess] = []
        # ``check`` (a periodic job's thread) and ``stop`` (the stopping daemon) take turns; a
        # check after the stop starts nothing again.
        self._lock = threading.Lock()
        self._stopped = False

    def _spawn(self, index: int) -> BaseProcess:
        process = self._context.Process(
            target=run_worker,
            args=(self.settings, os.getpid(), self.log_level, self.log_format),
            name=f"dispatch-{index}",
            daemon=True,
        )
        process.start()
        return process

    def start(self) -> None:
        self.processes = [self._spawn(index + 1) for index in range(self.count)]
        if self.processes:
            logger.info(
                "dispatch workers started",
                extra={"action": "workers_started", "workers": len(self.processes)},
            )

    def check(self) -> int:
        """Start again each worker that has exited; returns how many were restarted."""
        with self._lock:
            return 0 if self._stopped else self._restart_exited()

    def _restart_exited(self) -> int:
        restarted = 0
        for index, process in enumerate(self.processes):
            if process.is_alive():
                continue
            logger.error(
                "dispatch worker exited; starting it again",
                extra={
                    "action": "worker_restarted",
                    "worker": process.name,
                    "exit_code": process.exitcode,
                },
            )
            process.close()
            self.processes[index] = self._spawn(index + 1)
            restarted += 1
        return restarted

    def stop(self, grace_seconds: float) -> None:
        """SIGTERM to each (it finishes the batch in hand), then SIGKILL past the grace period;
        rows of a killed worker go back to the schedule through the reaper."""
        with self._lock:
            self._stopped = True
            self._stop_all(grace_seconds)

    def _stop_all(self, grace_seconds: float) -> None:
        for process in self.processes:
            process.terminate()
        deadline = time.monotonic() + grace_seconds
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                logger.warning(
                    "dispatch worker did not stop in time; killed",
                    extra={"action": "worker_killed", "worker": process.name},
                )
                process.kill()
                process.join()
        self.processes = []
