"""Engine, sessions and migrations for SQLite (embedded default) and PostgreSQL (scale-out)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from carebot.exceptions import StoreError

__all__ = ["Checkpoint", "Database", "make_engine"]

P = ParamSpec("P")
T = TypeVar("T")

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


def _prepare_sqlite(engine: Engine) -> None:
    """WAL, synchronous=NORMAL, busy_timeout, and transactions that take the write lock first.

    The two listeners are SQLAlchemy's documented recipe for controlling SQLite's transactions
    (pysqlite dialect, "Serializable isolation / Savepoints / Transactional DDL").
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL: in WAL mode a commit survives a crash of the process (not of the machine)
        # without an fsync per commit.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Take the write lock up front: a deferred transaction that later writes can fail with
        # SQLITE_BUSY without waiting, which busy_timeout cannot help with.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, synchronous=NORMAL, busy_timeout, BEGIN IMMEDIATE."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot reach the database {url}: cannot create {folder}: "
                    f"{exc.strerror or exc}"
                ) from exc
            # Transactions take turns (``Database.transaction``), so one pooled connection
            # serves them all and keeps its page cache warm; a connection opened beside one
            # (a migration, a check) is closed when returned.
            kwargs.setdefault("pool_size", 1)
            kwargs.setdefault("max_overflow", -1)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        _prepare_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        # carebot speaks psycopg 3: accept the plain postgresql:// spelling operators use.
        parsed = parsed.set(drivername="postgresql+psycopg")
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


class Database:
    """One database: an engine, short transactions, and its migrations."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time and every transaction here takes the write lock
        # (BEGIN IMMEDIATE). Threads of one process take turns on a lock of their own instead
        # of in SQLite's busy handler, which polls with sleeps of up to 100 ms and lets a
        # request wait behind others that came later. Other processes wait on busy_timeout.
        self._turn: AbstractContextManager[Any] = (
            threading.Lock() if self.dialect == "sqlite" else nullcontext()
        )
        self._local = threading.local()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on leaving the block, or rolls back on error.

        On SQLite, transactions of this process take turns, and do not nest (the inner block
        would wait for the outer one forever).
        """
        if self.dialect != "sqlite":
            with self._sessions.begin() as session:
                yield session
            return
        if getattr(self._local, "open", False):
            raise RuntimeError("SQLite transactions do not nest: the inner one would wait forever")
        with self._turn:
            self._local.open = True
            try:
                with self._sessions.begin() as session:
                    yield session
            finally:
                self._local.open = False

    async def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking database work ``fn`` in a worker thread; return once it is done."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    def check(self) -> None:
        """Connect once; raise ``StoreError`` with the reason when the database cannot be
        reached (server down, wrong password, a file in a folder that cannot be written)."""
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            url = self.engine.url.render_as_string(hide_password=True)
            raise StoreError(f"cannot reach the database {url}: {reason}") from exc

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
        self.engine.dispose()
