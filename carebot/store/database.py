"""Engine, sessions and migrations for SQLite (embedded default) and PostgreSQL (scale-out)."""

from __future__ import annotations

import asyncio
import functools
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Checkpoint", "Database", "make_engine"]

P = ParamSpec("P")
T = TypeVar("T")

# At most this many calls share one SQLite transaction (see ``_Writer``).
MAX_GROUP = 64
# How long a SQLite statement waits for another connection's lock; the WAL checkpoint waits
# less, because it holds writers up while it waits.
BUSY_TIMEOUT_MS = 30_000
CHECKPOINT_BUSY_MS = 1_000


@dataclass(frozen=True)
class Checkpoint:
    """SQLite's answer to a WAL checkpoint: ``busy`` when it could not finish (try again);
    the frames in the log before it and how many of them were folded back."""

    busy: bool
    log_frames: int
    checkpointed: int


MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _prepare_sqlite(engine: Engine, *, durable: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit survives a crash of the process (not of the machine) without an
        # fsync per commit. OFF for a throwaway database, which nobody reads after a crash.
        cursor.execute(f"PRAGMA synchronous={'NORMAL' if durable else 'OFF'}")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front: a deferred transaction that later writes can fail with
        # SQLITE_BUSY without waiting, which busy_timeout cannot help with. Straight to the
        # driver: this runs before every transaction and needs no result.
        connection.connection.driver_connection.execute("BEGIN IMMEDIATE")


def make_engine(url: str, *, durable: bool = True, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, synchronous=NORMAL, busy_timeout, BEGIN IMMEDIATE.

    ``durable=False`` is for throwaway SQLite files (``carebot simulate``): commits skip
    syncing the log.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        _prepare_sqlite(engine, durable=durable)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        # carebot speaks psycopg 3: accept the plain postgresql:// spelling operators use.
        parsed = parsed.set(drivername="postgresql+psycopg")
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


class Database:
    """One database: an engine, short transactions, and its migrations."""

    def __init__(self, url: str, *, durable: bool = True, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, durable=durable, **engine_kwargs)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time and every transaction here takes the write lock
        # (BEGIN IMMEDIATE). Threads of one process queue on a lock of their own instead of
        # in SQLite's busy handler, which polls with sleeps of up to 100 ms and lets a request
        # wait seconds behind others that came later. Other processes still wait on
        # busy_timeout.
        self._writer: AbstractContextManager[Any] = (
            threading.RLock() if self.dialect == "sqlite" else nullcontext()
        )
        # SQLite: since transactions take turns anyway, they share one connection and one
        # session, opened on first use. Checking a connection out of the pool and setting up a
        # session cost more than a short transaction's statements.
        self._shared: tuple[Connection, Session] | None = None
        # True while a transaction on it runs (read and written under the writer lock only).
        self._shared_open = False
        # SQLite: the busy paths (ingest, dispatch) hand their work to one thread of its own
        # (``call``), which commits what queued up meanwhile together (``_Writer``).
        self._worker = _Writer(self) if self.dialect == "sqlite" else None
        # Set in the writer thread while it runs a group: transactions become savepoints.
        self._local = threading.local()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on leaving the block, or rolls back on error.

        In a group of calls (SQLite, ``call``) the block is a savepoint of the group's
        transaction instead: it rolls back alone, and commits with the group.
        """
        if self.dialect != "sqlite":
            with self._sessions.begin() as session:
                yield session
            return
        with self._writer:
            if getattr(self._local, "grouped", False):
                session = self._shared_session()
                with _savepoint(session):
                    yield session
                return
            with self._shared_transaction() as session:
                yield session

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for the block, in which each ``transaction()`` is a savepoint.

        For SQLite, in one thread (the writer thread's groups). Elsewhere the block adds
        nothing: each transaction commits on its own.
        """
        if self.dialect != "sqlite":
            yield
            return
        with self._writer, self._shared_transaction():
            self._local.grouped = True
            try:
                yield
            finally:
                self._local.grouped = False

    @contextmanager
    def _shared_transaction(self) -> Iterator[Session]:
        """A transaction on the shared SQLite connection (the caller holds the writer lock).

        The transaction is the connection's own, begun on first use (see ``_SharedSession``);
        the session's pending objects are flushed before it commits.
        """
        if self._shared_open:
            # The inner block's commit would commit the outer block's work half done.
            raise RuntimeError("transactions on the shared SQLite connection do not nest")
        session = self._shared_session()
        connection = cast(Connection, session.bind)
        self._shared_open = True
        try:
            yield session
            if session.in_transaction():
                session.commit()  # a flush, and the commit if the ORM began the transaction
            if connection.in_transaction():
                connection.commit()
        except BaseException:
            self._drop_shared()
            raise
        finally:
            self._shared_open = False
            # Leave nothing behind for the next transaction: objects loaded here are
            # detached, as from a session of their own.
            session.close()

    def batch_intact(self) -> bool:
        """Inside ``batch``: False once a failed ORM flush rolled the group's transaction
        back, after which nothing more of the batch can be committed."""
        if self._shared is None:
            return False
        connection, session = self._shared
        joined = session.get_transaction()
        if joined is not None and not joined.is_active:
            return False
        # No transaction yet is intact too: nothing of the batch has touched the database.
        transaction = connection.get_transaction()
        return transaction is None or transaction.is_active

    async def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking database work ``fn`` off the event loop; return once it is committed."""
        if self._worker is None:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return await asyncio.wrap_future(
            self._worker.submit(functools.partial(fn, *args, **kwargs))
        )

    def _drop_shared(self) -> None:
        """After a transaction failed: a fresh connection for the next one.

        A failed commit can leave SQLite's transaction open while SQLAlchemy counts it as
        ended, and the pool then skips its rollback: roll back at the driver first.
        """
        if self._shared is None:
            return
        connection, session = self._shared
        self._shared = None
        session.close()
        try:
            driver = connection.connection.driver_connection
            if driver is not None and driver.in_transaction:
                driver.rollback()
            connection.close()
        except Exception:
            connection.invalidate()

    def _shared_session(self) -> Session:
        if self._shared is None or self._shared[0].closed or self._shared[0].invalidated:
            connection = self.engine.connect()
            self._shared = (connection, _SharedSession(bind=connection, expire_on_commit=False))
        return self._shared[1]

    def upgrade(self, revision: str = "head") -> None:
        """Run the Alembic migrations up to ``revision``."""
        from alembic import command

        command.upgrade(self.alembic_config(), revision)

    def pending_migrations(self) -> bool:
        """True when the database is not at the newest migration."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        heads = set(ScriptDirectory.from_config(self.alembic_config()).get_heads())
        with self.engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
        return current != heads

    def alembic_config(self) -> Any:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["engine"] = self.engine
        return config

    def checkpoint(self) -> Checkpoint | None:
        """Fold the SQLite WAL back into the database file and truncate it (None elsewhere).

        ``PRAGMA wal_checkpoint`` fails ("database table is locked") inside a transaction,
        and every transaction here begins ``BEGIN IMMEDIATE``: so it runs on a pooled DBAPI
        connection outside any transaction. TRUNCATE waits for readers and blocks writers
        while it waits, so only briefly (``CHECKPOINT_BUSY_MS``): when others keep it from
        finishing, ``busy`` comes back true and the next run tries again. SQLite's own
        passive checkpoints on commit keep the log from growing meanwhile.
        """
        if self.dialect != "sqlite":
            return None
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout={CHECKPOINT_BUSY_MS}")
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                row = cast(tuple[int, int, int], cursor.fetchone())
                busy, log_frames, checkpointed = row
            except sqlite3.OperationalError as exc:
                # SQLITE_BUSY / SQLITE_LOCKED (another checkpoint, a long writer): not an
                # error, only not this time.
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                busy, log_frames, checkpointed = 1, -1, -1
            finally:
                cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                cursor.close()
        finally:
            raw.close()
        return Checkpoint(busy=bool(busy), log_frames=log_frames, checkpointed=checkpointed)

    def dispose(self) -> None:
        if self._worker is not None:
            self._worker.stop()
        with self._writer:
            if self._shared is not None:
                self._shared[0].close()
                self._shared = None
        self.engine.dispose()


class _SharedSession(Session):
    """The session on SQLite's shared connection, whose transactions are the connection's.

    ``connection()`` hands out that connection, its transaction begun: the hot paths run Core
    statements on it, and the session's own transaction bookkeeping cost more per transaction
    than their statements. ORM use (``execute``, ``add``, ``get``, a flush) begins a session
    transaction, which joins the connection's when there is one (its commit then leaves the
    connection's alone; a failed flush rolls it back) and begins it otherwise.
    """

    def connection(
        self,
        bind_arguments: Any = None,
        execution_options: Any = None,
    ) -> Connection:
        if bind_arguments is not None or execution_options is not None:
            return super().connection(bind_arguments, execution_options)
        connection = cast(Connection, self.bind)
        if not connection.in_transaction():
            connection.begin()  # BEGIN IMMEDIATE (see ``_prepare_sqlite``)
        return connection


@contextmanager
def _savepoint(session: Session) -> Iterator[None]:
    """A savepoint on the shared SQLite connection, straight through the driver: a fifth of
    the cost of the session's own (``begin_nested``), which the writer pays on every call.

    A failed ORM flush still leaves the session needing a rollback; the writer sees that
    (``Database.batch_intact``) and runs the group's calls again one by one.
    """
    session.flush()
    driver = session.connection().connection.driver_connection
    assert driver is not None
    driver.execute("SAVEPOINT carebot_call")
    try:
        yield
        session.flush()
    except BaseException:
        driver.execute("ROLLBACK TO carebot_call")
        driver.execute("RELEASE carebot_call")
        raise
    else:
        driver.execute("RELEASE carebot_call")
    finally:
        # What one call loaded must not be served, stale, to the next one of the group.
        session.expunge_all()


class _BrokenGroup(Exception):
    """A call left the group's session unusable: roll the group back."""


class _Writer:
    """SQLite's writer thread: runs the calls handed to it, committing many at once.

    Calls that queue up while a group runs form the next group (up to ``MAX_GROUP``): one
    transaction in which each call's own transaction is a savepoint, one commit for all. A
    call's future is resolved only after that commit, so whoever awaits it (a webhook before
    answering 2xx, the dispatcher before calling a provider) still sees its work durable. A
    call that fails rolls back alone; a commit that fails fails every call of its group.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="carebot-db", daemon=True)
                self._thread.start()
        self._queue.put((fn, future))
        return future

    def stop(self) -> None:
        """Finish what was handed in, then end the thread."""
        with self._start:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stopping = False
            while len(group) < MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                group.append(item)
            self._run_group(group)
            if stopping:
                return

    def _run_group(self, group: list[tuple[Callable[[], Any], Future[Any]]]) -> None:
        self._commit(
            [(fn, future) for fn, future in group if future.set_running_or_notify_cancel()]
        )

    def _commit(self, calls: list[tuple[Callable[[], Any], Future[Any]]]) -> None:
        """Run ``calls`` in one transaction, then answer each of them."""
        done: list[tuple[Future[Any], Any, BaseException | None]] = []
        try:
            with self._db.batch():
                for fn, future in calls:
                    try:
                        done.append((future, fn(), None))
                    except BaseException as exc:  # the caller gets it, the group goes on
                        done.append((future, None, exc))
                    if not self._db.batch_intact():
                        raise _BrokenGroup
        except _BrokenGroup:
            # Nothing of the group was kept. Alone, the call that broke it gets its own error;
            # in company, every call runs again in a transaction of its own.
            if len(calls) == 1:
                calls[0][1].set_exception(done[0][2] or RuntimeError("transaction broken"))
                return
            for call in calls:
                self._commit([call])
            return
        except BaseException as exc:
            # The group's transaction failed (to open, or to commit): nothing of it is stored,
            # and every call fails, including those it never reached.
            for _, future in calls:
                future.set_exception(exc)
            return
        for future, result, error in done:
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)
