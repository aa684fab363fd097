"""The tamper-evident audit trail: every audit row sealed with a hash chain per case, and
the operations log (``ops_events``: retention plans and runs) in one chain of its own.

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

Redaction without rewriting history. A row's personal fields (``data``, ``note`` and
``actor``: what was said about the family, and who looked) are not hashed directly:
the seal covers their salted SHA-256, kept in ``personal_digest``, with the salt in
``personal_salt``. Everything else (case, moment, event, states, channel, the digest,
the previous hash) is hashed as it is. Retention and erasure never edit or delete an
audit row's history: they append a ``redacted`` row to the case's chain listing the
ids of the rows whose personal fields they blank, then blank exactly those fields (to
:data:`REDACTED`, dropping the salt so the digest can no longer be tested against a
guessed name). Verification then

* recomputes every row's seal from the stored digest, so a changed moment, event,
  state or removed row is still found, redacted or not;
* for a row listed by a redaction row, checks the personal fields hold nothing but
  the marker (personal text put back, or a changed actor, is a break);
* for every other row, checks the personal fields against their digest (a changed
  note, detail or actor is a break).

The list of redacted ids is itself sealed in the redaction row, so nobody can quietly
declare a row redacted. On PostgreSQL a trigger (migration ``0014_privacy``) refuses
any UPDATE or DELETE of an audit row except that one blanking, and only of rows a
redaction row already lists. Rows sealed before the digest existed (``personal_digest``
empty) keep their original seal over their full content; if one of them is redacted,
its own seal can no longer be recomputed and only its link in the chain is checked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, String, bindparam, inspect, literal_column, select, text
from sqlmodel import Session, col

from casework import driver
from casework.models import Case, CaseEvent, OpsEvent, StaffEvent

# The last row of each case's chain, for many cases in one statement.
_CHAIN_ENDS_CHUNK = 500

# The last hash of the case's audit chain, as a column of a query on cases: a
# transition reads it with the case (SQLite only: see
# ``casework.cases.unit.load_case_with_clocks``), the case page with its head row
# (:mod:`casework.cases.case_reads`), and a seal here (SQLite).
CHAIN_END = (
    select(col(CaseEvent.hash))
    .where(col(CaseEvent.case_id) == col(Case.id))
    .order_by(col(CaseEvent.id).desc())
    .limit(1)
    .correlate(Case)
    .scalar_subquery()
)
# The same, read by ``casework_locked_chain_ends`` (PostgreSQL, migration 0017), which
# locks the case row BEFORE reading: a writer that waited for another's lock then reads
# the row that one added (a plain subquery reads the end as it was when its statement
# began). The case page's recorded look and a step's version-checked UPDATE use it.
LOCKED_CHAIN_END = literal_column(
    "(SELECT l.chain_end FROM casework_locked_chain_ends(ARRAY[cases.id]) AS l)", String
)

# SQLite: each case's chain end (its writers take turns, BEGIN IMMEDIATE: no lock to
# take), for a list of cases or for one (a fixed text, run on the driver's cursor).
_CHAIN_ENDS = (
    select(col(Case.id), CHAIN_END)
    .where(col(Case.id).in_(bindparam("case_ids", expanding=True)))
    .order_by(col(Case.id))
)
_CHAIN_ENDS_OF_ONE = select(col(Case.id), CHAIN_END).where(col(Case.id) == bindparam("case_id"))
# PostgreSQL: the locks first, then the ends, in one call (migration 0017). Locking and
# reading in ONE plain statement read the end as it was before a writer it waited for
# committed its row (one snapshot per statement), and the chain forked.
_PG_LOCKED_CHAIN_ENDS = text(
    "SELECT chain_case_id, chain_end FROM casework_locked_chain_ends(CAST(:case_ids AS integer[]))"
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


# What a redacted row's note and actor hold, and the event of a redaction row.
REDACTED = "(personal details removed)"
REDACTION_EVENT = "redacted"


def personal_digest(
    *, salt: str, actor: str, data: Mapping[str, Any] | None, note: str | None
) -> str:
    """Salted SHA-256 of a row's personal fields: what its seal covers instead of them."""
    content = {
        "salt": salt,
        "actor": actor,
        "data": json.loads(json.dumps(dict(data or {}), default=str)),
        "note": note or "",
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def sealed_digest(
    *,
    case_id: int,
    at: dt.datetime,
    event: str,
    from_state: str | None,
    to_state: str | None,
    channel: str,
    personal: str,
    previous: str,
) -> str:
    """SHA-256 of a row's non-personal content, its personal digest and the previous hash."""
    content = {
        "case_id": case_id,
        "at": at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "event": event,
        "from_state": from_state,
        "to_state": to_state,
        "channel": channel,
        "personal": personal,
        "previous": previous,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _seal(row: Any, previous: str) -> str:
    """Give a new row its salt, personal digest and seal (attributes or dict keys)."""

    def get(key: str) -> Any:
        return row[key] if isinstance(row, dict) else getattr(row, key)

    def put(key: str, value: str) -> None:
        if isinstance(row, dict):
            row[key] = value
        else:
            setattr(row, key, value)

    salt = secrets.token_hex(16)
    personal = personal_digest(salt=salt, actor=get("actor"), data=get("data"), note=get("note"))
    put("personal_salt", salt)
    put("personal_digest", personal)
    put(
        "hash",
        sealed_digest(
            case_id=get("case_id"),
            at=get("at"),
            event=get("event"),
            from_state=get("from_state"),
            to_state=get("to_state"),
            channel=get("channel"),
            personal=personal,
            previous=previous,
        ),
    )
    return str(get("hash"))


def _digest_of(row: Any, previous: str) -> str:
    """The seal a stored row should carry: over its personal digest, or (older rows, sealed
    before the digest existed) over its full content."""
    if getattr(row, "personal_digest", None):
        return sealed_digest(
            case_id=row.case_id,
            at=row.at,
            event=row.event,
            from_state=row.from_state,
            to_state=row.to_state,
            channel=row.channel,
            personal=row.personal_digest,
            previous=previous,
        )
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


OPS_LOG = "the operations log"


def app_role_grants(role: str) -> list[str]:
    """The PostgreSQL statements that leave the app's own role able to read and append to
    the audit tables, and to blank an audit row's personal fields (the redaction, which
    the trigger further limits), but never to change or delete a row's history.

    Run by migration ``0014_privacy`` when ``CASEWORK_DB_APP_ROLE`` is set; see README.
    """
    quoted = '"' + role.replace('"', '""') + '"'
    return [
        f"REVOKE ALL ON case_events FROM {quoted}",
        f"GRANT SELECT, INSERT ON case_events TO {quoted}",
        f"GRANT UPDATE (data, note, actor, personal_salt) ON case_events TO {quoted}",
        f"GRANT USAGE ON SEQUENCE case_events_id_seq TO {quoted}",
        f"REVOKE ALL ON ops_events FROM {quoted}",
        f"GRANT SELECT, INSERT ON ops_events TO {quoted}",
        f"GRANT USAGE ON SEQUENCE ops_events_id_seq TO {quoted}",
        f"REVOKE ALL ON staff_events FROM {quoted}",
        f"GRANT SELECT, INSERT ON staff_events TO {quoted}",
        f"GRANT USAGE ON SEQUENCE staff_events_id_seq TO {quoted}",
    ]


def ops_digest(*, at: dt.datetime, actor: str, action: str, data: Any, previous: str) -> str:
    """SHA-256 of one operations-log row and the hash of the row before it."""
    content = {
        "at": at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "data": json.loads(json.dumps(dict(data or {}), default=str)),
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


def _seal_ops(session: Session) -> None:
    new = [o for o in session.new if isinstance(o, OpsEvent) and o.hash is None]
    if not new:
        return
    new.sort(key=lambda o: inspect(o).insert_order)
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # One writer at a time on the single chain.
        connection.exec_driver_sql("LOCK TABLE ops_events IN SHARE ROW EXCLUSIVE MODE")
    previous = (
        connection.execute(
            select(col(OpsEvent.hash)).order_by(col(OpsEvent.id).desc()).limit(1)
        ).scalar_one_or_none()
        or ""
    )
    for row in new:
        row.hash = ops_digest(
            at=row.at, actor=row.actor, action=row.action, data=row.data, previous=previous
        )
        previous = row.hash


def seal_new_rows(session: Session, _flush_context: Any, _instances: Any) -> None:
    """Give every audit row about to be inserted its place in its case's chain."""
    _seal_staff_rows(session)
    _seal_ops(session)
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
        last[row.case_id] = _seal(row, last[row.case_id])


def _chain_ends(connection: Connection, case_ids: Iterable[int]) -> dict[int, str]:
    """The last hash of each case's chain, with the chains held until this transaction ends.

    One statement per chunk of cases both locks them (PostgreSQL: FOR UPDATE of the case
    rows, so one writer at a time per chain) and then reads each chain's last hash, so
    a writer that waited for the lock reads the row the other writer added
    (``casework_locked_chain_ends``, migration 0017): a transition pays one statement
    for its seal, the sweep one per 500 cases. SQLite needs no lock: its writers take
    turns for the whole transaction (BEGIN IMMEDIATE), so the ends are plainly read.
    """
    ids = sorted(set(case_ids))
    ends: dict[int, str] = dict.fromkeys(ids, "")
    if connection.dialect.name == "postgresql":
        for start in range(0, len(ids), _CHAIN_ENDS_CHUNK):
            chunk = ids[start : start + _CHAIN_ENDS_CHUNK]
            params = {"case_ids": chunk}
            for case_id, digest in driver.rows(connection, _PG_LOCKED_CHAIN_ENDS, params):
                ends[case_id] = digest or ""
        return ends
    if len(ids) == 1:
        for case_id, digest in driver.rows(connection, _CHAIN_ENDS_OF_ONE, {"case_id": ids[0]}):
            ends[case_id] = digest or ""
        return ends
    for start in range(0, len(ids), _CHAIN_ENDS_CHUNK):
        chunk = ids[start : start + _CHAIN_ENDS_CHUNK]
        for case_id, digest in connection.execute(_CHAIN_ENDS, {"case_ids": chunk}):
            ends[case_id] = digest or ""
    return ends


def seal_rows(
    connection: Connection,
    rows: list[dict[str, Any]],
    known: Mapping[int, str] | None = None,
) -> None:
    """Seal audit rows written without the ORM (the sweep's, a transition's), in order.

    ``known``: each case's chain end, already read in this transaction by a statement
    whose snapshot the write is bound to (SQLite only: a writer whose snapshot went
    stale is refused, so the end it read is the end it chains onto). Without it, the
    ends are read here, locking the case rows first on PostgreSQL (:func:`_chain_ends`).
    """
    if not rows:
        return
    wanted = {row["case_id"] for row in rows}
    if known is not None and wanted <= known.keys():
        last = {case_id: known[case_id] or "" for case_id in wanted}
    else:
        last = _chain_ends(connection, wanted)
    for row in rows:
        last[row["case_id"]] = _seal(row, last[row["case_id"]])


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
    # Rows sealed after the same row as the row just before them: two writers at the
    # same moment on PostgreSQL before migration 0017. Both rows are genuine and
    # unchanged; listed so the operator is not told of tampering that never happened.
    forks: list[ChainBreak] = field(default_factory=list)


def _personal_fault(row: Any, redacted: bool) -> str | None:
    """Why a row's personal fields do not match what was sealed, or None when they do."""
    if redacted:
        if row.note != REDACTED or row.actor != REDACTED or dict(row.data or {}):
            return (
                "it was redacted, but personal details have been put back or changed"
                " outside casework"
            )
        return None
    if not row.personal_digest:
        return None  # sealed before the digest existed: its seal covers these fields
    if row.personal_salt is None or row.personal_digest != personal_digest(
        salt=row.personal_salt, actor=row.actor, data=row.data, note=row.note
    ):
        return (
            "who recorded it or what it says was changed outside casework"
            " (it does not match its seal)"
        )
    return None


def _walk(
    rows: Iterable[Any], references: Mapping[int, str], redacted: frozenset[int] = frozenset()
) -> Verification:
    breaks: list[ChainBreak] = []
    forks: list[ChainBreak] = []
    total = sealed = 0
    seen_cases: set[int] = set()
    case_id: int | None = None
    previous = before_previous = ""
    started = broken = False
    for row in rows:
        total += 1
        if row.case_id != case_id:
            case_id, previous, before_previous = row.case_id, "", ""
            started = broken = False
            seen_cases.add(row.case_id)
        if broken:
            continue
        why = None
        is_redacted = row.id in redacted
        if row.hash is None:
            if started:
                why = "its seal has been removed"
        else:
            sealed += 1
            started = True
            if is_redacted and not row.personal_digest:
                pass  # an older row's seal covered the text now removed: only its link counts
            elif row.hash != _digest_of(row, previous):
                if started and previous and row.hash == _digest_of(row, before_previous):
                    # Sealed after the same row as the row before it: the two were
                    # written at the same moment (the race migration 0017 closed).
                    forks.append(_chain_note(row, references, _FORK_WORDS))
                else:
                    why = (
                        "it does not match its seal: it, or a row before it on this case,"
                        " was changed or removed outside casework"
                    )
            before_previous, previous = previous, row.hash
        if why is None and row.hash is not None:
            why = _personal_fault(row, is_redacted)
        if why is not None:
            broken = True
            breaks.append(_chain_note(row, references, why))
    return Verification(
        rows=total, sealed=sealed, cases=len(seen_cases), breaks=breaks, forks=forks
    )


_FORK_WORDS = (
    "it and the row before it were written at the same moment and both follow the same"
    " earlier row; neither was changed (two people wrote at once, before casework made"
    " them take turns on 1 December 2026)"
)


def _chain_note(row: Any, references: Mapping[int, str], why: str) -> ChainBreak:
    return ChainBreak(
        case_id=row.case_id,
        reference=references.get(row.case_id, "an unknown case"),
        event=row.event,
        at=row.at,
        why=why,
    )


def redacted_ids(connection: Connection) -> frozenset[int]:
    """Every audit row a redaction row lists (read from the sealed redaction rows)."""
    found: set[int] = set()
    for (data,) in connection.execute(
        select(col(CaseEvent.data)).where(col(CaseEvent.event) == REDACTION_EVENT)
    ):
        found.update(int(i) for i in (data or {}).get("rows", []))
    return frozenset(found)


def _ops_break(connection: Connection) -> ChainBreak | None:
    """The first operations-log row that does not match its seal, if any."""
    previous = ""
    for row in connection.execute(select(OpsEvent).order_by(col(OpsEvent.id))):
        if row.hash != ops_digest(
            at=row.at, actor=row.actor, action=row.action, data=row.data, previous=previous
        ):
            return ChainBreak(
                case_id=0,
                reference=OPS_LOG,
                event=row.action,
                at=row.at,
                why=(
                    "it does not match its seal: it, or a row before it, was changed or"
                    " removed outside casework"
                ),
            )
        previous = row.hash or ""
    return None


def find_breaks(connection: Connection) -> Verification:
    """Walk every case's chain in the order the rows were written, then the operations log."""
    references: dict[int, str] = {
        int(case_id or 0): reference
        for case_id, reference in connection.execute(select(col(Case.id), col(Case.reference)))
    }
    redacted = redacted_ids(connection)
    rows = connection.execute(
        select(
            col(CaseEvent.id),
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
            col(CaseEvent.personal_digest),
            col(CaseEvent.personal_salt),
        ).order_by(col(CaseEvent.case_id), col(CaseEvent.id))
    )
    result = _walk(rows, references, redacted)
    ops = _ops_break(connection)
    if ops is not None:
        result.breaks.append(ops)
    return result


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


def seal_after(row: CaseEvent, previous: str) -> None:
    """Seal one new audit row after the chain end ``previous``, read (and, on PostgreSQL,
    locked) by the caller's own query: a read that records a view then needs no
    separate statement for its seal (:func:`seal_new_rows` skips a sealed row)."""
    _seal(row, previous)
