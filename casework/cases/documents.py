"""The document store: certificates, invitations and letters, append-only, every read audited.

A document is created by the use case whose event needs it, in that event's
transaction (:func:`store_document` never commits), so a certificate is never
recorded without its PDF nor a PDF kept for a certificate that was not recorded.
Content is never rewritten: a correction is a new version in the same series and
the old row only learns which row superseded it.

Reading a document's bytes is like opening the case: :func:`get_document` writes an
audit row (who, when, which document) before handing them over, and provider staff
read only their own cases' documents of the kinds listed in
:data:`casework.cases.provider_view.DOCUMENT_KINDS`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, func, insert, literal_column, select, union_all, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import defer, make_transient_to_detached
from sqlmodel import Session, col

from casework import driver
from casework.cases.access import check_actor_may_see
from casework.cases.context import Actor
from casework.cases.detail import DocumentInfo
from casework.cases.errors import NotFound, ValidationFailed
from casework.cases.provider_view import DOCUMENT_KINDS, provider_may_open
from casework.cases.unit import audit_event, begin_as_writer, load_case, new_row, require_aware
from casework.config import Settings
from casework.models import Case, Document, DocumentKind

DOWNLOAD_EVENT = "download_document"

# File names go into Content-Disposition headers and email attachments: plain
# letters, digits, dots and dashes only, and never a name (no personal data).
_SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,150}\.[a-z0-9]{2,5}$")


def info_of(document: Document) -> DocumentInfo:
    return DocumentInfo(
        id=document.id,  # type: ignore[arg-type]
        case_id=document.case_id,
        kind=document.kind,
        series=document.series,
        version=document.version,
        file_name=document.file_name,
        media_type=document.media_type,
        size=document.size,
        sha256=document.sha256,
        created_by=document.created_by,
        created_at=document.created_at,
        superseded_by=document.superseded_by,
        certificate_number=document.certificate_number,
    )


def current_document(session: Session, case: Case, kind: str, series: str = "") -> Document | None:
    """The version of ``series`` no later one has superseded, if any."""
    return session.execute(
        select(Document)
        .options(defer(Document.content))  # type: ignore[arg-type]
        .where(
            col(Document.case_id) == case.id,
            col(Document.kind) == kind,
            col(Document.series) == series,
            col(Document.superseded_by).is_(None),
        )
        .order_by(col(Document.version).desc())
        .limit(1)
    ).scalar_one_or_none()


def store_document(
    session: Session,
    case: Case,
    kind: str,
    content: bytes,
    media_type: str,
    file_name: str,
    actor: Actor,
    *,
    now: dt.datetime,
    settings: Settings,
    series: str = "",
    certificate_number: str | None = None,
    verification_code: str | None = None,
    issued_on: dt.date | None = None,
    new_series: bool = False,
) -> Document:
    """Add ``content`` as the next version of ``(case, kind, series)``; supersede the last.

    Runs inside the caller's transaction and does not commit: the caller's event (and
    its audit row, which should name the document id) commits both or neither. The
    new row is flushed so its id is known (for the audit row and for a notice that
    attaches it). ``new_series`` says the series was just created (a new certificate
    number), so there is no earlier version to look up.
    """
    if kind not in DocumentKind.__members__.values():
        raise ValidationFailed(f"casework keeps no documents of the kind {kind!r}")
    if not content:
        raise ValidationFailed("a document cannot be empty")
    if len(content) > settings.document_max_bytes:
        raise ValidationFailed(
            f"the document is {len(content):,} bytes; documents are limited to"
            f" {settings.document_max_bytes:,} bytes (CASEWORK_DOCUMENT_MAX_BYTES)"
        )
    if not _SAFE_FILE_NAME.match(file_name):
        raise ValidationFailed(
            f"the file name {file_name!r} must be letters, digits, dots and dashes only"
        )
    now = require_aware(now)
    # Inserted through the connection, not added to the session: the event making
    # the document may be mid-change (advance flushes the case once, at commit), and
    # the new id is needed now, for the audit row and for a notice attaching it.
    values: dict[str, Any] = {
        "case_id": case.id,
        "kind": kind,
        "series": series,
        "file_name": file_name,
        "media_type": media_type,
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "created_by": actor.id,
        "created_at": now,
        "superseded_by": None,
        "content": content,
        "certificate_number": certificate_number,
        "verification_code": verification_code,
        "issued_on": issued_on,
    }
    conn = session.connection()
    if new_series:
        # A Core statement built once, run on the driver: building an ORM insert with
        # the values inlined cost more than the round trip (its cache key covers them).
        values["version"] = 1
        cursor = driver.execute(conn, _INSERT_DOCUMENT, values)
        new_id = cursor.fetchone()[0]
        cursor.close()
    else:
        # The next version and the superseding of the last in ONE statement, no read
        # first: a step that stores a document (a meeting's invitation) stays within
        # its budget (see _next_version).
        params: dict[str, Any] = {"s_case_id": case.id, "s_kind": kind, "s_series": series}
        params.update(values)
        statement = _next_version(conn.dialect.name)
        # SQLite returns the versions superseded too: the new one has the highest id.
        new_id, values["version"] = max(driver.rows(conn, statement, params))
    # The row as written (its values checked above), attached to the session without
    # reading it back.
    document = new_row(Document, id=new_id, **values)
    make_transient_to_detached(document)
    session.add(document)
    return document


_DOCUMENTS: Any = Document.__table__  # type: ignore[attr-defined]
_INSERT_DOCUMENT = driver.insert_every_column(_DOCUMENTS).returning(_DOCUMENTS.c.id)
_DOCUMENT_COLUMNS = [c for c in _DOCUMENTS.c if not c.primary_key]


@lru_cache(maxsize=2)
def _next_version(dialect: str) -> Any:
    """The next version of a series (one more than its last, 1 for the first) written and
    every earlier version left current superseded by it, as one statement built once.

    PostgreSQL: the INSERT and the UPDATE as data-modifying CTEs; they share one
    snapshot, so the UPDATE never sees the row being added. SQLite, which has no such
    CTEs: one upsert. Its rows are the new version, numbered as SQLite would number it
    (one more than the highest id: the table is not AUTOINCREMENT), and every current
    version of the series proposed again under its own id, which conflicts and only
    takes ``superseded_by``. SQLite computes an INSERT's SELECT from its own table in
    full before writing, so the ids and the version are those before the new row; a
    proposed row only has to satisfy NOT NULL, so the old versions' bytes are not copied
    (an empty blob stands in).
    """
    table = _DOCUMENTS
    of_series = (
        (table.c.case_id == bindparam("s_case_id"))
        & (table.c.kind == bindparam("s_kind"))
        & (table.c.series == bindparam("s_series"))
    )
    version = select(func.coalesce(func.max(table.c.version), 0) + 1).where(of_series)
    given = {c.name: bindparam(c.name, type_=c.type) for c in _DOCUMENT_COLUMNS}
    if dialect == "postgresql":
        new = (
            insert(table)
            .values({**given, "version": version.scalar_subquery()})
            .returning(table.c.id, table.c.version)
            .cte("new_version")
        )
        superseded = (
            update(table)
            .where(of_series, table.c.superseded_by.is_(None))
            .values(superseded_by=select(new.c.id).scalar_subquery())
            .cte("superseded")
        )
        return select(new.c.id, new.c.version).add_cte(superseded)
    next_id = select(func.coalesce(func.max(table.c.id), 0) + 1).scalar_subquery()
    names = ["id", *(c.name for c in _DOCUMENT_COLUMNS)]
    new_row = {**given, "id": next_id, "version": version.scalar_subquery()}
    proposed_again = {c.name: c for c in table.c} | {
        "superseded_by": next_id,
        "content": literal_column("X''"),
    }
    rows = union_all(
        select(*(new_row[name].label(name) for name in names)),
        select(*(proposed_again[name].label(name) for name in names)).where(
            of_series, table.c.superseded_by.is_(None)
        ),
    )
    upsert = sqlite_insert(table).from_select(names, rows)
    return upsert.on_conflict_do_update(
        index_elements=[table.c.id], set_={"superseded_by": upsert.excluded.superseded_by}
    ).returning(table.c.id, table.c.version)


def _visible(actor: Actor, kind: str) -> bool:
    return not actor.is_provider or kind in DOCUMENT_KINDS


def all_documents(session: Session, case: Case) -> list[DocumentInfo]:
    """Every document of the case, newest first, without their bytes (for the read model)."""
    rows = session.execute(
        select(Document)
        .options(defer(Document.content))  # type: ignore[arg-type]
        .where(col(Document.case_id) == case.id)
        .order_by(col(Document.created_at).desc(), col(Document.id).desc())
    ).scalars()
    return [info_of(d) for d in rows]


def documents_of(session: Session, case: Case, actor: Actor) -> list[DocumentInfo]:
    """The case's documents this person may read, newest first (no bytes loaded).

    The caller has already checked that ``actor`` may see ``case``.
    """
    return [d for d in all_documents(session, case) if _visible(actor, d.kind)]


def list_case_documents(session: Session, reference: str, actor: Actor) -> list[DocumentInfo]:
    """``casework case documents REF``: the case's documents, as ``actor`` may see them."""
    case, _family, _provider = load_case(session, reference)
    check_actor_may_see(case, actor)
    return documents_of(session, case, actor)


def _no_such_document(document_id: int) -> NotFound:
    return NotFound(
        f"There is no document number {document_id}. Check the number on the case's documents list."
    )


def _provider_may_open(
    session: Session, case: Case, actor: Actor, now: dt.datetime, settings: Settings | None
) -> bool:
    if settings is None or actor.provider_id is None:
        return False
    return (
        session.execute(
            select(col(Case.id)).where(
                col(Case.id) == case.id,
                provider_may_open(actor.provider_id, now=now, settings=settings),
            )
        ).first()
        is not None
    )


def get_document(
    session: Session,
    document_id: int,
    actor: Actor,
    now: dt.datetime,
    *,
    settings: Settings | None = None,
) -> Document:
    """One document's bytes, after recording who fetched it (like a view of the case).

    Another provider's document, or one of a kind provider staff do not read, reads
    exactly like a document that does not exist; so does one of a case its provider may
    no longer open (:func:`~casework.cases.provider_view.provider_may_open`, which needs
    ``settings``: without them provider staff are refused). The audit row is committed
    before the bytes are returned, so a download that cannot be recorded is not served.
    """
    now = require_aware(now)
    document = session.get(Document, document_id)
    if document is None:
        raise _no_such_document(document_id)
    case = session.get(Case, document.case_id)
    if case is None:
        raise _no_such_document(document_id)
    try:
        check_actor_may_see(case, actor)
    except NotFound:
        raise _no_such_document(document_id) from None
    if not _visible(actor, document.kind):
        raise _no_such_document(document_id)
    if actor.is_provider and not _provider_may_open(session, case, actor, now, settings):
        raise _no_such_document(document_id)
    state = case.state
    # As record_view: reads committed first, then the write as the writer.
    begin_as_writer(session)
    session.add(
        audit_event(
            case,
            actor=actor,
            event=DOWNLOAD_EVENT,
            at=now,
            from_state=state,
            data={
                "document_id": document.id,
                "kind": document.kind,
                "version": document.version,
                "file_name": document.file_name,
            },
        )
    )
    session.commit()
    return document
