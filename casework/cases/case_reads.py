"""The case read model's statements: a whole case page in two reads, built once per process.

Why: a case page used to cost a dozen queries (the case, its allocation, clocks,
notices, their deliveries, agreed actions, history, notes, documents, recent views,
and the view's seal), each built and compiled per request. Here:

1. :data:`HEAD` reads the case, its family contact, its provider, its live allocation
   and that allocation's provider, and the end of the case's audit chain, in one
   statement (``FOR UPDATE OF cases`` on PostgreSQL when the look is recorded, the
   same lock the chain's seal takes, so the view row is sealed without another read);
2. :func:`lists_statement` reads every list the page shows in one statement: each
   list is a scalar subquery aggregated to a JSON array (``json_group_array`` on
   SQLite, ``json_agg`` on PostgreSQL), decoded here into the same model objects the
   ORM would load, the column types' own conversions applied.

The statements are built from the models' tables, so a new column is read too.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from functools import cache
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    Table,
    TextClause,
    bindparam,
    select,
    text,
)
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import manager_of_class
from sqlalchemy.types import JSON, LargeBinary
from sqlmodel import col

from casework.audit import CHAIN_END, LOCKED_CHAIN_END
from casework.cases.detail import DocumentInfo
from casework.cases.unit import live_allocation_id
from casework.models import (
    AgreementItem,
    Allocation,
    Case,
    CaseEvent,
    CaseNote,
    Deadline,
    DeliveryEvent,
    Document,
    Notice,
    Person,
    Provider,
    UTCDateTime,
)

VIEW_EVENT = "viewed"

_AllocationProvider: Any = aliased(Provider, name="allocation_provider")
_LIVE_ALLOCATION_ID = live_allocation_id(col(Case.id)).correlate(Case)
# The case, family, provider, live allocation (:func:`live_allocation_id`) and its
# provider, and the chain's end.


def _head(chain_end: Any) -> Any:
    return (
        select(Case, Person, Provider, Allocation, _AllocationProvider, chain_end)
        .outerjoin(Person, (col(Person.case_id) == Case.id) & (col(Person.role) == "family"))
        .outerjoin(Provider, col(Provider.id) == Case.provider_id)
        .outerjoin(Allocation, col(Allocation.id) == _LIVE_ALLOCATION_ID)
        .outerjoin(_AllocationProvider, _AllocationProvider.id == col(Allocation.provider_id))
        .where(col(Case.reference) == bindparam("reference"))
    )


HEAD = _head(CHAIN_END)
# Recording the look: the chain is held until the view row is written. On PostgreSQL
# the end is read by ``casework_locked_chain_ends`` (migration 0017), which takes the
# lock BEFORE reading: a look that waited for another writer's lock then seals after
# that writer's row (a plain subquery here would read the end as it was before it).
HEAD_FOR_VIEW = HEAD.with_for_update(of=Case)
HEAD_FOR_VIEW_POSTGRESQL = _head(LOCKED_CHAIN_END).with_for_update(of=Case)


def head_statement(dialect: str, *, record: bool) -> Any:
    """The head read: plain, or locking the case's chain for a look that is recorded."""
    if not record:
        return HEAD
    return HEAD_FOR_VIEW_POSTGRESQL if dialect == "postgresql" else HEAD_FOR_VIEW


def _table(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]


def _columns(model: Any) -> list[Any]:
    """The columns a list reads: all but stored bytes (a document's content)."""
    return [c for c in _table(model).columns if not isinstance(c.type, LargeBinary)]


def _json_array(dialect: str, model: Any, source: str) -> str:
    """A scalar subquery: the rows of ``source`` (a SELECT) as one JSON array of objects."""
    cols = _columns(model)
    if dialect == "postgresql":
        pairs = ", ".join(f"'{c.name}', t.{c.name}" for c in cols)
        aggregate = f"coalesce(json_agg(json_build_object({pairs})), '[]'::json)"
        return f"(SELECT {aggregate} FROM ({source}) AS t)"
    pairs = ", ".join(
        f"'{c.name}', json(t.{c.name})" if isinstance(c.type, JSON) else f"'{c.name}', t.{c.name}"
        for c in cols
    )
    return f"(SELECT json_group_array(json_object({pairs})) FROM ({source}) AS t)"


@cache
def lists_statement(dialect: str, *, with_notices: bool, views_in_history: bool) -> TextClause:
    """Every list of one case (``:case_id``) in one statement, per database and variant."""

    def rows(model: Any, where: str, order: str, limit: str = "") -> str:
        names = ", ".join(c.name for c in _columns(model))
        table = _table(model).name
        return _json_array(
            dialect, model, f"SELECT {names} FROM {table} WHERE {where} ORDER BY {order}{limit}"
        )

    case = "case_id = :case_id"
    events = case if views_in_history else f"{case} AND event <> '{VIEW_EVENT}'"
    parts = [
        rows(Deadline, case, "id"),
        rows(AgreementItem, case, "number"),
        rows(CaseEvent, events, "id"),
        rows(CaseEvent, f"{case} AND event = '{VIEW_EVENT}'", "id DESC", " LIMIT 10"),
        f"(SELECT count(*) FROM case_events WHERE {case} AND event = '{VIEW_EVENT}')",
        rows(CaseNote, case, "id"),
        rows(Document, case, "created_at DESC, id DESC"),
    ]
    if with_notices:
        parts += [
            rows(Notice, case, "created_at, id"),
            rows(
                DeliveryEvent,
                "notice_id IN (SELECT id FROM notices WHERE case_id = :case_id)",
                "at, id",
            ),
        ]
    # Last: the case's version as this statement read it, so a caller that read the head
    # in an earlier transaction can tell whether the lists belong to the same case row.
    parts.append("(SELECT version FROM cases WHERE id = :case_id)")
    return text("SELECT " + ",\n  ".join(parts))


# --- Decoding: JSON values back to what the ORM would have loaded -------------------------


def _utc(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    moment = dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:  # SQLite keeps naive UTC
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _date(value: Any) -> dt.date | None:
    return None if value is None else dt.date.fromisoformat(value[:10])


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _converter(column: Any) -> Callable[[Any], Any] | None:
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return _utc
    if isinstance(kind, Date):
        return _date
    if isinstance(kind, Boolean):
        return _bool
    if isinstance(kind, JSON):
        return _json
    return None


@cache
def _decoders(model: Any) -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
    return tuple((c.name, _converter(c)) for c in _columns(model))


def _values(model: Any, raw: dict[str, Any]) -> dict[str, Any]:
    return {
        name: (convert(raw[name]) if convert is not None else raw[name])
        for name, convert in _decoders(model)
    }


def decode(model: Any, value: Any) -> list[Any]:
    """A JSON array of ``model`` rows as model objects (detached, read-only use).

    Made as the ORM makes a loaded row (a bare instance, its values put straight into
    its ``__dict__``), not through the model's constructor, which checks every field
    again and cost more than the whole read.
    """
    manager = manager_of_class(model)
    out = []
    for raw in _json(value) or []:
        instance = manager.new_instance()
        instance.__dict__.update(_values(model, raw))
        out.append(instance)
    return out


def decode_documents(value: Any) -> list[DocumentInfo]:
    fields = DocumentInfo.__dataclass_fields__
    out = []
    for raw in _json(value) or []:
        values = _values(Document, raw)
        out.append(DocumentInfo(**{k: v for k, v in values.items() if k in fields}))
    return out
