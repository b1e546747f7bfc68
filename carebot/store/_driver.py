"""The store's hot statements straight on SQLite's driver, as SQLAlchemy compiled them.

A SQLAlchemy execution costs 10 µs and more of Python around a statement SQLite runs in a few:
it sets up an execution context, fires events, processes each parameter and wraps the cursor in
a result. The ingest and send paths run fourteen such statements per event, and in one process
on SQLite that bookkeeping was a quarter of the time ``carebot simulate`` spent.

``run`` takes a Core statement, compiles it once with SQLAlchemy for the parameter names it is
given, keeps the column types' own bind and result processors, and from then on only binds,
executes on the ``sqlite3`` cursor and converts the row values. What it cannot reproduce
exactly (expanding parameters, Python-side column defaults that are not constants, a
connection outside a transaction, another database) it hands to ``Connection.execute``, as
are all other statements. PostgreSQL runs everything through SQLAlchemy: there, the server
does the work.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, CursorResult
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound
from sqlalchemy.orm import Session

__all__ = ["DriverResult", "Result", "run", "session_run"]

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]
# Statements planned at most: the store's hot statements are built once, so this is only a
# bound should a caller build a statement per call.
MAX_PLANS = 256


@dataclass(frozen=True)
class _Plan:
    """One statement compiled for one set of parameter names."""

    sql: str
    # Per positional parameter: the caller's key and the type's bind processor, or (None,
    # the value already processed) for a value fixed in the statement.
    slots: tuple[tuple[str | None, Any], ...]
    # For statements that return rows: the row type, and the columns that need converting.
    row: type[tuple[Any, ...]] | None
    results: tuple[tuple[int, Callable[[Any], Any]], ...]

    def bind(self, params: Mapping[str, Any]) -> list[Any]:
        values = []
        for key, process in self.slots:
            if key is None:
                values.append(process)
            elif process is None:
                values.append(params[key])
            else:
                values.append(process(params[key]))
        return values

    def rows(self, fetched: list[tuple[Any, ...]]) -> list[Any]:
        assert self.row is not None
        make = self.row._make  # type: ignore[attr-defined]
        if not self.results:
            return [make(raw) for raw in fetched]
        rows = []
        for raw in fetched:
            values = list(raw)
            for index, process in self.results:
                values[index] = process(values[index])
            rows.append(make(values))
        return rows


class DriverResult:
    """The part of SQLAlchemy's result API the store uses, over rows already fetched."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return list(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when one or none was required")
        return self.first()

    def one(self) -> Any:
        if not self._rows:
            raise NoResultFound("No row was found when one was required")
        return self.one_or_none()

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]


Result = DriverResult | CursorResult[Any]

# Plans by statement (kept alive here, so ids stay unique) and parameter names.
_PLANS: dict[tuple[int, frozenset[str]], tuple[Any, _Plan | None]] = {}


def run(connection: Connection, statement: Any, params: Params) -> Result:
    """Execute ``statement`` with ``params`` (one row, or a list for many) on ``connection``.

    The result is a ``DriverResult``, or SQLAlchemy's own where the statement went through
    ``Connection.execute``; the store reads either through the methods they share.
    """
    rows = [params] if isinstance(params, Mapping) else list(params)
    if connection.dialect.name != "sqlite" or not connection.in_transaction() or not rows:
        return connection.execute(statement, params)
    first = rows[0]
    key = (id(statement), frozenset(first))
    cached = _PLANS.get(key)
    if cached is None:
        if len(_PLANS) >= MAX_PLANS:
            _PLANS.clear()
        cached = _PLANS[key] = (statement, _plan(statement, connection.dialect, first))
    plan = cached[1]
    many = not isinstance(params, Mapping)
    if plan is None or (
        many and (plan.row is not None or any(row.keys() != first.keys() for row in rows))
    ):
        return connection.execute(statement, params)
    driver = connection.connection.driver_connection
    assert driver is not None
    try:
        if many:
            cursor = driver.executemany(plan.sql, [plan.bind(row) for row in rows])
        else:
            cursor = driver.execute(plan.sql, plan.bind(first))
        fetched = plan.rows(cursor.fetchall()) if plan.row is not None else []
        return DriverResult(fetched, cursor.rowcount)
    except connection.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(
            plan.sql, params, exc, connection.dialect.loaded_dbapi.Error
        ) from exc


def session_run(session: Session, statement: Any, params: Params) -> Result:
    """``run`` on the session's connection: a third of the cost of ``Session.execute``.

    Nothing is flushed first: only for statements on tables of which no ORM object can be
    pending in the session (their callers say why).
    """
    return run(session.connection(), statement, params)


def _row_type(keys: list[str]) -> type[tuple[Any, ...]]:
    """A named tuple of ``keys`` that also answers SQLAlchemy's ``Row._mapping``."""
    base = namedtuple("Row", keys)  # type: ignore[misc]

    class Row(base):  # type: ignore[misc,valid-type]
        __slots__ = ()

        @property
        def _mapping(self) -> dict[str, Any]:
            return self._asdict()  # type: ignore[no-any-return]

    return Row


def _plan(statement: Any, dialect: Dialect, params: Mapping[str, Any]) -> _Plan | None:
    """Compile ``statement`` for these parameter names, or None when only SQLAlchemy can run
    it faithfully."""
    compiled = statement.compile(dialect=dialect, column_keys=list(params))
    if "POSTCOMPILE" in compiled.string or compiled.positiontup is None:
        return None
    prefetched = {
        column.key: column for column in (*compiled.insert_prefetch, *compiled.update_prefetch)
    }
    slots: list[tuple[str | None, Any]] = []
    for name in compiled.positiontup:
        bind = compiled.binds[name]
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if bind.key in params or name in params:
            slots.append((bind.key if bind.key in params else name, process))
            continue
        if name in prefetched:
            default = prefetched[name].default
            if default is None or not default.is_scalar:
                return None
            value = default.arg
        elif bind.callable is None and not bind.required:
            value = bind.value
        else:
            return None
        slots.append((None, value if process is None else process(value)))
    # What the statement returns: a select's columns, or an insert's or update's RETURNING.
    columns = list(getattr(statement, "exported_columns", ()))
    row: type[tuple[Any, ...]] | None = None
    results: list[tuple[int, Callable[[Any], Any]]] = []
    if columns:
        row = _row_type([column.key for column in columns])
        for index, column in enumerate(columns):
            process = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if process is not None:
                results.append((index, process))
    return _Plan(compiled.string, tuple(slots), row, tuple(results))
