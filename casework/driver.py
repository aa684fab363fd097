"""Statements compiled once per process and database, run on the driver's own cursor.

Why: on a transition's hot path SQLAlchemy's per-statement work (a cache key built
from the statement on every execution, an execution context, parameter and result
processing through generic machinery) cost more than the database did. A statement
here is compiled once per dialect; its bind and result processors are SQLAlchemy's
own (so values are stored and read exactly as the ORM stores and reads them), and
executing it is a cursor call with the parameters already in order.

What stays the same as a SQLAlchemy execution: the statement runs on the
connection's current transaction; the engine's ``before_cursor_execute`` and
``after_cursor_execute`` listeners see it (the statement counts in the tests and
benches stay honest); a driver error is raised as SQLAlchemy's (an IntegrityError, an
OperationalError for a locked SQLite database, a disconnect invalidating the
connection), through the connection's own handling.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, String, bindparam, literal
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql import util as sql_util
from sqlalchemy.sql.elements import BindParameter

_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class Compiled:
    """One statement's text for one dialect, with how to bind and read its values."""

    sql: str
    positional: bool
    # Per parameter, in the order the text names them: its name, the value it has when
    # the caller gives none (a LIMIT's), whether the caller must give it, its processor.
    names: tuple[str, ...]
    defaults: tuple[Any, ...]
    required: tuple[bool, ...]
    binds: tuple[_Processor, ...]
    # Result columns needing processing, as (index, processor).
    results: tuple[tuple[int, Callable[[Any], Any]], ...]
    statement: Any  # kept so the id the cache is keyed by is never reused

    def arguments(self, params: Mapping[str, Any]) -> Any:
        """The parameters as the driver takes them: processed, in order (or by name)."""
        values = []
        for name, default, required, process in zip(
            self.names, self.defaults, self.required, self.binds, strict=True
        ):
            value = params[name] if required or name in params else default
            values.append(process(value) if process is not None else value)
        if self.positional:
            return tuple(values)
        return dict(zip(self.names, values, strict=True))

    def process(self, row: Sequence[Any]) -> tuple[Any, ...]:
        if not self.results:
            return tuple(row)
        out = list(row)
        for index, process in self.results:
            value = out[index]
            if value is not None:
                out[index] = process(value)
        return tuple(out)


# --- Constants written into statements ------------------------------------------------


def fixed(value: str) -> Any:
    """``value`` written into the statement's text, not sent as a parameter.

    Why, on each database:

    - PostgreSQL plans a statement with parameters again on every run (a plan for one
      set of values says nothing of the next), and a case list's statements cost about
      1 ms each to plan, four times what they cost to run. Written in, a list page's
      statement has no parameter left, and the prepared statement psycopg keeps for it
      keeps its plan (0.003 ms).
    - SQLite prepares a statement again on EVERY run when one of its parameters is
      compared with a column that a partial index's WHERE names (a clock's or a
      notice's status, ``ix_deadlines_met_late``, ``ix_notices_ready``): it checks
      whether the value lets it use that index. A step's load is four joins wide, and
      preparing it again cost 90 µs of its 115.

    Only for our own constants (a clock's status, the final states, the family's role),
    the same on every run: what a person typed is always a parameter. Statements run by
    :func:`execute` get them rendered once, when compiled.
    """
    return literal(value, String, literal_execute=True)


def fixed_list(name: str, values: Sequence[str]) -> Any:
    """Like :func:`fixed`, a list of constants for ``IN`` (``name`` names it)."""
    return bindparam(name, list(values), expanding=True, literal_execute=True)


_CACHE: dict[tuple[int, str], Compiled] = {}


def insert_every_column(table: Any) -> Any:
    """An INSERT naming every column but the id: one text per statement, for rows that
    give every value. None is written as NULL, as leaving the column out would: a
    table with a server default (which leaving it out would use) is refused here."""
    columns = [c for c in table.c if not c.primary_key]
    if any(c.server_default is not None for c in columns):
        raise ValueError(f"{table.name} has server defaults: leave those columns out instead")
    return table.insert().values({c.name: bindparam(c.name, type_=c.type) for c in columns})


def compiled(statement: Any, dialect: Dialect) -> Compiled:
    """``statement`` compiled for ``dialect``, once per process (keyed by the object:
    only statements built once, at import or in an ``lru_cache``, belong here)."""
    key = (id(statement), dialect.name)
    found = _CACHE.get(key)
    if found is not None and found.statement is statement:
        return found
    result = _compile(statement, dialect)
    _CACHE[key] = result
    return result


def _compile(statement: Any, dialect: Dialect) -> Compiled:
    sql_compiled: Any = statement.compile(dialect=dialect)
    by_name: dict[str, BindParameter[Any]] = {
        name: bind for bind, name in sql_compiled.bind_names.items() if not bind.literal_execute
    }
    positional = bool(sql_compiled.positional)
    sql = sql_compiled.string
    order: list[str] = list(sql_compiled.positiontup) if positional else list(by_name)
    if "POSTCOMPILE" in sql:
        # Constants written in (fixed()) are rendered now, once: their values are part
        # of the statement. A list the caller gives at each run is not (the text would
        # change with its length).
        if any(bind.expanding for bind in by_name.values()) or any(
            bind.value is None for bind in sql_compiled.binds.values() if bind.literal_execute
        ):
            raise ValueError("statements with expanding parameters are not run here")
        # The text does not depend on the values given for the other parameters.
        expanded = sql_compiled.construct_expanded_state(dict.fromkeys(by_name))
        sql = expanded.statement
        order = list(expanded.positiontup) if positional else list(by_name)
    processors = sql_compiled._bind_processors
    names, defaults, required, binds = [], [], [], []
    for name in order:
        bind = by_name[name]
        names.append(name)
        given_later = bind.required or (bind.value is None and bind.callable is None)
        required.append(bool(given_later))
        defaults.append(None if given_later else bind.effective_value)
        binds.append(processors.get(name))
    results: list[tuple[int, Callable[[Any], Any]]] = []
    # A SELECT's columns, or what an INSERT ... RETURNING returns.
    columns: Any = getattr(statement, "selected_columns", None) or getattr(
        statement, "_returning", None
    )
    for index, column in enumerate(columns or ()):
        process = column.type._cached_result_processor(dialect, None)
        if process is not None:
            results.append((index, process))
    return Compiled(
        sql,
        positional,
        tuple(names),
        tuple(defaults),
        tuple(required),
        tuple(binds),
        tuple(results),
        statement,
    )


def execute(conn: Connection, statement: Any, params: Mapping[str, Any] | None = None) -> Any:
    """Run ``statement`` on ``conn``'s transaction; returns the driver's cursor (the
    caller fetches from it and closes it, see :func:`rows` and :func:`rowcount`)."""
    prepared = compiled(statement, conn.dialect)
    cursor = conn.connection.cursor()
    _run(conn, cursor, prepared.sql, prepared.arguments(params or {}), many=False)
    return cursor


def execute_many(conn: Connection, statement: Any, params: Sequence[Mapping[str, Any]]) -> None:
    """Run ``statement`` once per parameter set, as one ``executemany`` (no results)."""
    prepared = compiled(statement, conn.dialect)
    cursor = conn.connection.cursor()
    _run(conn, cursor, prepared.sql, [prepared.arguments(p) for p in params], many=True)
    cursor.close()


def _run(conn: Connection, cursor: Any, sql: str, args: Any, *, many: bool) -> None:
    """Execute on the driver's cursor as SQLAlchemy would: the engine's statement
    listeners see it (the statement counts of tests and benches stay honest), and a
    driver error comes back as SQLAlchemy's (conflict, locked, integrity, disconnect)."""
    if conn._echo:
        _echo(conn, sql, args, many)
    listened = conn._has_events or conn.engine._has_events
    if listened:
        for before in conn.dispatch.before_cursor_execute:
            sql, args = before(conn, cursor, sql, args, None, many)
    try:
        if many:
            cursor.executemany(sql, args)
        else:
            cursor.execute(sql, args)
    except BaseException as error:
        cursor.close()
        conn._handle_dbapi_exception(error, sql, args, cursor, None)
    if listened:
        for after in conn.dispatch.after_cursor_execute:
            after(conn, cursor, sql, args, None, many)


def run_raw(conn: Connection, cursor: Any, sql: str) -> None:
    """A fixed statement with no parameters (a transaction's BEGIN) on ``cursor``, seen
    by the engine's listeners and echo, its errors raised as SQLAlchemy's."""
    _run(conn, cursor, sql, (), many=False)


def _echo(conn: Connection, sql: str, args: Any, many: bool) -> None:
    """Log the statement as SQLAlchemy's ``echo`` does (the ``sql_echo`` setting), so a
    statement sent here is in the log like every other; its parameters are hidden when
    the engine hides them."""
    conn._log_info(sql)
    if conn.engine.hide_parameters:
        conn._log_info("[driver] [SQL parameters hidden due to hide_parameters=True]")
    else:
        conn._log_info("[driver] %r", sql_util._repr_params(args, batches=10, ismulti=many))


def rows(conn: Connection, statement: Any, params: Mapping[str, Any] | None = None) -> list[Any]:
    """Every row ``statement`` returns, its values as SQLAlchemy would give them."""
    prepared = compiled(statement, conn.dialect)
    cursor = execute(conn, statement, params)
    try:
        return [prepared.process(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


def rowcount(conn: Connection, statement: Any, params: Mapping[str, Any] | None = None) -> int:
    """How many rows an UPDATE or DELETE matched."""
    cursor = execute(conn, statement, params)
    try:
        return int(cursor.rowcount)
    finally:
        cursor.close()
