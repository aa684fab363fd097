"""The tamper-evident audit trail: every audit row sealed with a hash chain per case.

Each ``case_events`` row carries the SHA-256 of its own content and of the hash of
the row before it on the same case. Altering, removing or re-ordering a row behind
the application's back breaks the chain at that point, and :func:`find_breaks`
says where. (Removing the newest rows of a case leaves a shorter chain that still
verifies; a backup's row counts are the check for that.)

Rows are sealed as they are written, in :func:`seal_new_rows` (a ``before_flush``
hook the use cases install), because only then is the previous row known: two rows
for one case in one transaction chain in the order they were added, and on
PostgreSQL the case row is locked first so two writers never chain onto the same
row. SQLite lets one writer at a time write, and a writer whose snapshot went stale
is refused, so the row it read last is the row it chains onto.

Rows written before the chain existed have no hash; each case's chain starts at
its first sealed row.

User administration and sign-in security (``staff_events``: people added, disabled,
given another role, tokens issued and revoked, sessions ended, two-factor sign-in
turned on or reset) belong to no case, so they form one chain of their own, sealed
the same way (:func:`staff_digest`) and walked by :func:`find_staff_breaks`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, bindparam, inspect, select
from sqlmodel import Session, col

from casework.models import Case, CaseEvent, StaffEvent

_LAST_HASH = (
    select(col(CaseEvent.hash))
    .where(col(CaseEvent.case_id) == bindparam("case_id"))
    .order_by(col(CaseEvent.id).desc())
    .limit(1)
)


def row_digest(
    *,
    case_id: int,
    at: dt.datetime,
    actor: str,
    event: str,
    from_state: str | None,
    to_state: str | None,
    data: Mapping[str, Any] | None,
    channel: str,
    note: str | None,
    previous: str,
) -> str:
    """SHA-256 of one row's content and the previous row's hash, in a canonical form that
    reads back the same from either database (UTC time to the microsecond, the data as
    JSON parses it)."""
    content = {
        "case_id": case_id,
        "at": at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "event": event,
        "from_state": from_state,
        "to_state": to_state,
        "data": json.loads(json.dumps(dict(data or {}), default=str)),
        "channel": channel,
        "note": note or "",
        "previous": previous,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _digest_of(row: Any, previous: str) -> str:
    return row_digest(
        case_id=row.case_id,
        at=row.at,
        actor=row.actor,
        event=row.event,
        from_state=row.from_state,
        to_state=row.to_state,
        data=row.data,
        channel=row.channel,
        note=row.note,
        previous=previous,
    )


def staff_digest(
    *,
    at: dt.datetime,
    actor: str,
    event: str,
    subject_id: int | None,
    data: Mapping[str, Any] | None,
    channel: str,
    note: str | None,
    previous: str,
) -> str:
    """SHA-256 of one staff audit row and the previous row's hash (canonical, as above)."""
    content = {
        "at": at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "event": event,
        "subject_id": subject_id,
        "data": json.loads(json.dumps(dict(data or {}), default=str)),
        "channel": channel,
        "note": note or "",
        "previous": previous,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _staff_digest_of(row: Any, previous: str) -> str:
    return staff_digest(
        at=row.at,
        actor=row.actor,
        event=row.event,
        subject_id=row.subject_id,
        data=row.data,
        channel=row.channel,
        note=row.note,
        previous=previous,
    )


# Any constant: the key of the PostgreSQL transaction lock that serialises the staff chain.
_STAFF_CHAIN_LOCK = 0x5747AFF


def _seal_staff_rows(session: Session) -> None:
    new = [o for o in session.new if isinstance(o, StaffEvent) and o.hash is None]
    if not new:
        return
    new.sort(key=lambda o: inspect(o).insert_order)
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # One writer at a time on the chain, held until this transaction ends.
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_STAFF_CHAIN_LOCK})")
    last = (
        connection.execute(
            select(col(StaffEvent.hash)).order_by(col(StaffEvent.id).desc()).limit(1)
        ).scalar_one_or_none()
        or ""
    )
    for row in new:
        row.hash = _staff_digest_of(row, last)
        last = row.hash


def seal_new_rows(session: Session, _flush_context: Any, _instances: Any) -> None:
    """Give every audit row about to be inserted its place in its case's chain."""
    _seal_staff_rows(session)
    new = [
        o
        for o in session.new
        if isinstance(o, CaseEvent) and o.hash is None and o.case_id is not None
    ]
    if not new:
        return
    new.sort(key=lambda o: inspect(o).insert_order)
    last = _chain_ends(session.connection(), {o.case_id for o in new})
    for row in new:
        row.hash = _digest_of(row, last[row.case_id])
        last[row.case_id] = row.hash


def _chain_ends(connection: Connection, case_ids: Iterable[int]) -> dict[int, str]:
    """The last hash of each case's chain, with the chains held until this transaction ends."""
    ids = sorted(set(case_ids))
    if connection.dialect.name == "postgresql":
        # One writer at a time per chain: the next writer reads the hash this one adds.
        connection.execute(
            select(col(Case.id))
            .where(col(Case.id).in_(ids))
            .order_by(col(Case.id))
            .with_for_update()
        )
    return {
        case_id: connection.execute(_LAST_HASH, {"case_id": case_id}).scalar_one_or_none() or ""
        for case_id in ids
    }


def seal_rows(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Seal audit rows written in bulk without the ORM (the sweep's), in the order given."""
    if not rows:
        return
    last = _chain_ends(connection, (row["case_id"] for row in rows))
    for row in rows:
        row["hash"] = _digest_of(SimpleNamespace(**row), last[row["case_id"]])
        last[row["case_id"]] = row["hash"]


@dataclass(frozen=True)
class ChainBreak:
    """The first row of one case's chain that does not match what was sealed."""

    case_id: int
    reference: str
    event: str
    at: dt.datetime
    why: str


@dataclass(frozen=True)
class Verification:
    rows: int
    sealed: int
    cases: int
    breaks: list[ChainBreak]


def _walk(rows: Iterable[Any], references: Mapping[int, str]) -> Verification:
    breaks: list[ChainBreak] = []
    total = sealed = 0
    seen_cases: set[int] = set()
    case_id: int | None = None
    previous = ""
    started = broken = False
    for row in rows:
        total += 1
        if row.case_id != case_id:
            case_id, previous, started, broken = row.case_id, "", False, False
            seen_cases.add(row.case_id)
        if broken:
            continue
        why = None
        if row.hash is None:
            if started:
                why = "its seal has been removed"
        else:
            sealed += 1
            started = True
            if row.hash != _digest_of(row, previous):
                why = (
                    "it does not match its seal: it, or a row before it on this case, was"
                    " changed or removed outside casework"
                )
            previous = row.hash
        if why is not None:
            broken = True
            breaks.append(
                ChainBreak(
                    case_id=row.case_id,
                    reference=references.get(row.case_id, "an unknown case"),
                    event=row.event,
                    at=row.at,
                    why=why,
                )
            )
    return Verification(rows=total, sealed=sealed, cases=len(seen_cases), breaks=breaks)


def find_breaks(connection: Connection) -> Verification:
    """Walk every case's chain in the order the rows were written."""
    references: dict[int, str] = {
        int(case_id or 0): reference
        for case_id, reference in connection.execute(select(col(Case.id), col(Case.reference)))
    }
    rows = connection.execute(
        select(
            col(CaseEvent.case_id),
            col(CaseEvent.at),
            col(CaseEvent.actor),
            col(CaseEvent.event),
            col(CaseEvent.from_state),
            col(CaseEvent.to_state),
            col(CaseEvent.data),
            col(CaseEvent.channel),
            col(CaseEvent.note),
            col(CaseEvent.hash),
        ).order_by(col(CaseEvent.case_id), col(CaseEvent.id))
    )
    return _walk(rows, references)


@dataclass(frozen=True)
class StaffChainBreak:
    """The first staff audit row that does not match what was sealed."""

    event: str
    at: dt.datetime
    why: str


def find_staff_breaks(connection: Connection) -> tuple[int, StaffChainBreak | None]:
    """Walk the staff audit chain: (rows walked, the first row that does not match)."""
    rows = connection.execute(select(StaffEvent).order_by(col(StaffEvent.id)))
    previous = ""
    total = 0
    for row in rows:
        total += 1
        if row.hash is None or row.hash != _staff_digest_of(row, previous):
            return total, StaffChainBreak(
                event=row.event,
                at=row.at,
                why=(
                    "it does not match its seal: it, or a row before it, was changed or"
                    " removed outside casework"
                ),
            )
        previous = row.hash
    return total, None
