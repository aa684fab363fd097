"""The tables: what must survive a restart lives here.

Cases carry their state and the facts their clocks hang off; the history is an
append-only ``case_events`` table; each clock is a ``deadlines`` row with an indexed
due time, so the scheduler sweeps the database rather than keeping a timer per case.
Notices are an outbox: written in the same transaction as the change that caused
them, delivered later by the dispatcher.
"""

from __future__ import annotations

import datetime as dt
import secrets
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import relationship
from sqlmodel import Field, Relationship, SQLModel

from casework.deadlines import DeadlineKind
from casework.states import CaseKind, CaseState


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on every database.

    SQLite has no zone-aware type, so values are stored as naive UTC and given
    their zone back on the way out; a naive value on the way in is a bug, refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: casework stores aware UTC datetimes only")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utc_column(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime(), nullable=nullable, index=index)


def new_public_id() -> str:
    """A random id for anything that appears in a URL sent outside (links, webhooks)."""
    return secrets.token_urlsafe(12)


def _values(enum: type[StrEnum]) -> str:
    return ", ".join(f"'{m.value}'" for m in enum)


class DeadlineStatus(StrEnum):
    open = "open"
    met = "met"
    missed = "missed"
    cancelled = "cancelled"


# The reason the sweep gives a clock it marks missed. The use cases replace it when
# the act is done late or the clock stops applying, so a missed clock still carrying
# it is late AND still outstanding (what the daily digest lists as late).
MISSED_OUTSTANDING = "not done by the due time"


class AllocationStatus(StrEnum):
    offered = "offered"
    accepted = "accepted"
    declined = "declined"
    ended = "ended"


class Provider(SQLModel, table=True):
    __tablename__ = "providers"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    name: str = Field(max_length=200)
    email: str = Field(max_length=320)
    phone: str = Field(default="", max_length=32)
    active: bool = True


_case_version = Column("version", Integer, nullable=False, server_default=text("1"))


class Case(SQLModel, table=True):
    """One request for disagreement resolution or mediation, and the facts its clocks need."""

    __tablename__ = "cases"
    __table_args__ = (
        CheckConstraint(f"state IN ({_values(CaseState)})", name="ck_cases_state"),
        CheckConstraint(f"kind IN ({_values(CaseKind)})", name="ck_cases_kind"),
        Index("ix_cases_state_kind", "state", "kind"),
        # Each provider's open load, for allocation suggestions and the portal list.
        Index("ix_cases_provider_state", "provider_id", "state"),
    )
    # Optimistic concurrency: every UPDATE carries "WHERE version = <loaded>"; a stale
    # writer matches no row and SQLAlchemy raises StaleDataError, which we turn into
    # a clear conflict error.
    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _case_version}

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(sa_column=Column(String(32), unique=True, nullable=False))
    public_id: str = Field(default_factory=new_public_id, max_length=32, unique=True)
    kind: str = Field(max_length=20)
    state: str = Field(max_length=32, index=True)
    version: int = Field(default=1, sa_column=_case_version)
    intake_channel: str = Field(max_length=20)
    opened_at: dt.datetime = utc_column(nullable=False)
    updated_at: dt.datetime = utc_column(nullable=False)

    summary: str = Field(default="", sa_type=Text)
    child_name: str = Field(default="", max_length=200)
    decision_date: dt.date | None = None
    decision_type: str | None = Field(default=None, max_length=32)
    health_care: bool = False
    health_only: bool = False
    placement_only: bool = False
    # Whether the LA's decision letter gave what reg 32 requires (the mediation
    # adviser's contact, the timescales, the right to appeal); None until asked.
    # When it did not, the Tribunal may extend the time to appeal.
    reg32_info_given: bool | None = None

    provider_id: int | None = Field(default=None, foreign_key="providers.id", index=True)
    adviser: str | None = Field(default=None, max_length=320)

    # The dates acts happened (not when they were typed in): every clock counts from them.
    advised_on: dt.date | None = None
    chose_on: dt.date | None = None
    la_told_on: dt.date | None = None
    icb_told_on: dt.date | None = None
    declined_on: dt.date | None = None
    meeting_on: dt.date | None = None
    meeting_time: str | None = Field(default=None, max_length=10)
    # Where the meeting is: an address or a video link (it goes into the invitation).
    meeting_place: str | None = Field(default=None, max_length=500)
    # The calendar invitation's numbers: which meeting of this case it is (part of its
    # stable UID) and how many times it changed (its SEQUENCE). Kept here, written in
    # the transaction that changes the meeting, so the next change cannot reuse one.
    meeting_number: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    meeting_sequence: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    meeting_held_on: dt.date | None = None
    meeting_outcome: str | None = Field(default=None, max_length=20)
    agreement: str | None = Field(default=None, sa_type=Text)
    not_arranged_reported_on: dt.date | None = None
    certificate_on: dt.date | None = None
    certificate_type: str | None = Field(default=None, max_length=20)
    # After a "deemed" certificate (meeting not arranged in 30 days) the meeting may
    # still happen; the mediator's certificate after it is a second certificate.
    second_certificate_on: dt.date | None = None
    appeal_due: dt.date | None = None
    close_outcome: str | None = Field(default=None, max_length=32)
    withdrawn_reason: str | None = Field(default=None, sa_type=Text)

    # A legal hold (a manager's, with the reason) keeps the case out of every
    # retention run until it is cleared (casework.cases.retention).
    legal_hold_reason: str | None = Field(default=None, sa_type=Text)
    legal_hold_by: str | None = Field(default=None, max_length=320)
    legal_hold_at: dt.datetime | None = utc_column()
    # When its personal data was anonymised (retention or erasure); facts and clocks stay.
    anonymised_at: dt.datetime | None = utc_column()


class Person(SQLModel, table=True):
    """The family contact. Phone is E.164, validated at intake so notices can reach it."""

    __tablename__ = "people"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    role: str = Field(default="family", max_length=20)
    name: str = Field(max_length=200)
    phone: str = Field(default="", max_length=20)
    email: str = Field(default="", max_length=320)
    preferred_channels: str = Field(default="sms,email", max_length=40)
    sms_consent: bool = True
    # The postal address, for a family that hears from us by letter.
    address_line_1: str = Field(default="", max_length=200)
    address_line_2: str = Field(default="", max_length=200)
    address_town: str = Field(default="", max_length=200)
    address_postcode: str = Field(default="", max_length=10)

    @property
    def channels(self) -> list[str]:
        return [c for c in self.preferred_channels.split(",") if c]


class Allocation(SQLModel, table=True):
    """A provider's offer of a case; the latest non-ended row is the live allocation."""

    __tablename__ = "allocations"
    __table_args__ = (
        CheckConstraint(f"status IN ({_values(AllocationStatus)})", name="ck_allocations_status"),
        # Whether a provider holds a case now, asked of every case a provider's list or
        # lookup reads (casework.cases.provider_view.provider_may_open): one probe of
        # this index, where SQLite would otherwise walk all the provider's allocations.
        Index("ix_allocations_case_provider_status", "case_id", "provider_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    provider_id: int = Field(foreign_key="providers.id", index=True)
    status: str = Field(default=AllocationStatus.offered, max_length=20)
    allocated_at: dt.datetime = utc_column(nullable=False)
    allocated_by: str = Field(max_length=320)
    responded_at: dt.datetime | None = utc_column()
    responded_by: str | None = Field(default=None, max_length=320)
    note: str = Field(default="", sa_type=Text)
    override_reason: str = Field(default="", sa_type=Text)


class CaseEvent(SQLModel, table=True):
    """Append-only audit trail: who did what to a case, when, from which channel, and why."""

    __tablename__ = "case_events"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    at: dt.datetime = utc_column(nullable=False)
    actor: str = Field(max_length=320)
    event: str = Field(max_length=40)
    from_state: str | None = Field(default=None, max_length=32)
    to_state: str | None = Field(default=None, max_length=32)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    channel: str = Field(max_length=20)
    note: str = Field(default="", sa_type=Text)
    # SHA-256 of this row and of the previous row's hash on the case (casework.audit);
    # empty only on rows written before the chain existed.
    hash: str | None = Field(default=None, max_length=64)
    # The personal fields (``data`` and ``note``) are sealed through their salted digest,
    # so a redaction can blank them and the chain still verifies (casework.audit).
    personal_digest: str | None = Field(default=None, max_length=64)
    personal_salt: str | None = Field(default=None, max_length=32)


class Deadline(SQLModel, table=True):
    """A clock: due date, rule and explanation, and whether it was met, missed or cancelled.

    ``next_action_at`` is the next moment the scheduler has something to do for this
    clock (a reminder, marking it missed, an escalation after it was missed); NULL
    once nothing is left to do. The sweep reads it through a partial index on the
    non-NULL rows, so a million finished clocks cost nothing.
    """

    __tablename__ = "deadlines"
    __table_args__ = (
        CheckConstraint(f"status IN ({_values(DeadlineStatus)})", name="ck_deadlines_status"),
        CheckConstraint(f"kind IN ({_values(DeadlineKind)})", name="ck_deadlines_kind"),
        Index(
            "ix_deadlines_next_action",
            "next_action_at",
            postgresql_where=text("next_action_at IS NOT NULL"),
            sqlite_where=text("next_action_at IS NOT NULL"),
        ),
        Index("ix_deadlines_case_status", "case_id", "status"),
        # Open clocks soonest first: the deadlines list, the manager page, the digest.
        # ``id`` breaks the ties (clocks fall due at 5pm, hundreds at once) so a page of
        # them in ``due_at, id`` order is read straight off the index (migration 0018).
        Index("ix_deadlines_status_due", "status", "due_at", "id"),
        # Clocks met late, by due date: the timeliness report's lateness figures read
        # only these instead of every missed clock (migration 0019).
        Index(
            "ix_deadlines_met_late",
            "due_date",
            postgresql_where=text("status = 'missed' AND done_on IS NOT NULL"),
            sqlite_where=text("status = 'missed' AND done_on IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id")
    kind: str = Field(max_length=40)
    due_date: dt.date
    due_at: dt.datetime = utc_column(nullable=False)
    status: str = Field(default=DeadlineStatus.open, max_length=20)
    citation: str = Field(max_length=200)
    explanation: str = Field(sa_type=Text)
    opened_at: dt.datetime = utc_column(nullable=False)
    closed_at: dt.datetime | None = utc_column()
    closed_reason: str = Field(default="", max_length=200)
    # The day the act was done (on time or late), as recorded by the use case; what
    # the reports count lateness from. None while open, when cancelled, or missed and
    # still outstanding.
    done_on: dt.date | None = None
    next_action_at: dt.datetime | None = utc_column()


class AgreementItem(SQLModel, table=True):
    """One thing agreed at mediation, who must do it, and by when (reg 42).

    ``matter`` is the reg 44 limit it falls under when the family could have
    appealed it (a key of the law data), or None for any other action (2 weeks).
    ``agreed_due_on`` is a timescale the parties agreed in writing, which replaces
    the default (reg 42(5)). Each item has its own clock, met when recorded done.
    """

    __tablename__ = "agreement_items"
    __table_args__ = (CheckConstraint("body IN ('la', 'icb')", name="ck_agreement_items_body"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    number: int
    description: str = Field(sa_type=Text)
    body: str = Field(max_length=10)
    matter: str | None = Field(default=None, max_length=60)
    agreed_on: dt.date
    agreed_due_on: dt.date | None = None
    due_date: dt.date
    done_on: dt.date | None = None
    deadline_id: int | None = Field(default=None, foreign_key="deadlines.id")
    recorded_at: dt.datetime = utc_column(nullable=False)
    recorded_by: str = Field(max_length=320)
    ended_reason: str = Field(default="", max_length=200)
    # The agreement as written at the meeting, until actions are recorded one by one.
    whole_agreement: bool = False
    # Set through the relationship so the unit of work inserts the clock first and
    # fills in its id, without a flush in the middle of a change.
    deadline: Deadline | None = Relationship(sa_relationship=relationship(Deadline))


class CaseNote(SQLModel, table=True):
    """A note or a logged call on a case, written by IAS staff.

    ``shared`` notes are meant for the provider the case is with; every other one stays
    with the IAS. A call carries the day it happened (``call_on``), its direction (in:
    someone rang the IAS; out: the IAS rang them) and who was on the line.
    """

    __tablename__ = "case_notes"
    __table_args__ = (
        CheckConstraint("kind IN ('note', 'call')", name="ck_case_notes_kind"),
        CheckConstraint(
            "direction IS NULL OR direction IN ('in', 'out')", name="ck_case_notes_direction"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    kind: str = Field(max_length=10)
    text: str = Field(sa_type=Text)
    shared: bool = False
    call_on: dt.date | None = None
    direction: str | None = Field(default=None, max_length=3)
    who: str = Field(default="", max_length=200)
    recorded_at: dt.datetime = utc_column(nullable=False)
    recorded_by: str = Field(max_length=320)


class DocumentKind(StrEnum):
    """What a stored document is; the words for each live in ``cases.words``."""

    # One kind per certificate situation, so who may read it is a list of kinds:
    # the provider's mediator issues the one after a meeting, the adviser the others.
    certificate_declined = "certificate_declined"
    certificate_not_arranged = "certificate_not_arranged"
    certificate_mediation_held = "certificate_mediation_held"
    meeting_invitation = "meeting_invitation"
    letter = "letter"


CERTIFICATE_KINDS: tuple[str, ...] = (
    DocumentKind.certificate_declined,
    DocumentKind.certificate_not_arranged,
    DocumentKind.certificate_mediation_held,
)


class Document(SQLModel, table=True):
    """A file casework made (a certificate, an invitation, a letter), kept as it was sent.

    Append-only: the content is never rewritten. A correction is a new row with the
    next ``version`` in the same ``series`` (a certificate's number, a meeting), and
    the row it replaces gets ``superseded_by`` pointing at it, so a certificate
    someone holds can always be checked against what was issued. The bytes live in
    the database (bytea / BLOB) so a backup of the database is a backup of them.
    """

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("case_id", "kind", "series", "version", name="uq_documents_version"),
        UniqueConstraint("certificate_number", "version", name="uq_documents_certificate"),
        Index("ix_documents_case", "case_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id")
    kind: str = Field(max_length=40)
    # What versions count within: a certificate's number, a meeting, a notice.
    series: str = Field(default="", max_length=64)
    version: int = 1
    file_name: str = Field(max_length=200)
    media_type: str = Field(max_length=100)
    size: int
    sha256: str = Field(max_length=64)
    created_by: str = Field(max_length=320)
    created_at: dt.datetime = utc_column(nullable=False)
    superseded_by: int | None = Field(default=None, foreign_key="documents.id")
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # Certificates only: the number printed on it and the code that proves it genuine.
    certificate_number: str | None = Field(default=None, max_length=32, index=True)
    verification_code: str | None = Field(default=None, max_length=16)
    # The date of issue printed on it (kept by a correction, which reprints it).
    issued_on: dt.date | None = None


class OpsEvent(SQLModel, table=True):
    """Append-only audit of operations on the whole service, not one case: a retention
    plan or run, who did it and what it counted. Hash-chained like ``case_events``, in
    one chain for the table (casework.audit); never holds a family's personal data."""

    __tablename__ = "ops_events"

    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = utc_column(nullable=False)
    actor: str = Field(max_length=320)
    action: str = Field(max_length=40)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    hash: str | None = Field(default=None, max_length=64)


class DataRequestStatus(StrEnum):
    received = "received"  # recorded by an adviser, waiting for a manager's decision
    approved = "approved"  # a manager agreed; the use case has still to carry it out
    refused = "refused"  # a manager refused, with the lawful basis
    done = "done"  # carried out; the closing record says what was kept and why


class DataRequest(SQLModel, table=True):
    """A request to correct (UK GDPR art. 16) or erase (art. 17) what is held about a person.

    ``changes`` holds the corrected contact details of a rectification; ``deadline_id``
    is its one-month clock (art. 12(3)), a ``deadlines`` row like any other so the
    sweep reminds and escalates it.
    """

    __tablename__ = "data_requests"
    __table_args__ = (
        CheckConstraint("kind IN ('rectification', 'erasure')", name="ck_data_requests_kind"),
        CheckConstraint(
            f"status IN ({_values(DataRequestStatus)})", name="ck_data_requests_status"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    kind: str = Field(max_length=20)
    requested_by: str = Field(max_length=200)
    received_on: dt.date
    what: str = Field(sa_type=Text)
    changes: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    status: str = Field(default=DataRequestStatus.received, max_length=20, index=True)
    recorded_by: str = Field(max_length=320)
    recorded_at: dt.datetime = utc_column(nullable=False)
    decided_by: str | None = Field(default=None, max_length=320)
    decided_at: dt.datetime | None = utc_column()
    refusal_basis: str = Field(default="", sa_type=Text)
    extension_reason: str = Field(default="", sa_type=Text)
    closing_record: str = Field(default="", sa_type=Text)
    done_at: dt.datetime | None = utc_column()
    deadline_id: int | None = Field(default=None, foreign_key="deadlines.id")


class ReferenceCounter(SQLModel, table=True):
    """Per-prefix, per-year counters behind human references like MED-2026-0042."""

    __tablename__ = "reference_counters"
    __table_args__ = (UniqueConstraint("prefix", "year", name="uq_reference_counters"),)

    id: int | None = Field(default=None, primary_key=True)
    prefix: str = Field(max_length=10)
    year: int
    last: int = 0


class NoticeStatus(StrEnum):
    queued = "queued"  # waiting for its moment (not_before) and a dispatcher
    sending = "sending"  # claimed by a dispatcher; reclaimed if the claim goes stale
    sent = "sent"  # the provider accepted it
    delivered = "delivered"  # a receipt says it reached the person
    failed = "failed"  # permanent failure, undelivered or bounced, or retries exhausted
    skipped = "skipped"  # no longer useful (moment passed, clock met, case closed)
    to_post = "to_post"  # a letter printed into the documents, waiting for staff to post it
    posted = "posted"  # staff put the letter in the post (posted_on)


class Notice(SQLModel, table=True):
    """The outbox: one message to one recipient on one channel, sent at most once.

    ``idempotency_key`` is unique: whatever queues the same notice twice (a re-run
    sweep, two sweepers, a retried request) collides here instead of messaging a
    family twice.
    """

    __tablename__ = "notices"
    __table_args__ = (
        CheckConstraint(f"status IN ({_values(NoticeStatus)})", name="ck_notices_status"),
        CheckConstraint("channel IN ('sms', 'email', 'post')", name="ck_notices_channel"),
        # A text message never carries a document: an email attaches one, a letter is one.
        CheckConstraint(
            "document_id IS NULL OR channel IN ('email', 'post')",
            name="ck_notices_document_email",
        ),
        Index(
            "ix_notices_ready",
            "not_before",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        Index(
            "ix_notices_sending",
            "claimed_at",
            postgresql_where=text("status = 'sending'"),
            sqlite_where=text("status = 'sending'"),
        ),
        Index("ix_notices_case", "case_id", "created_at"),
        Index(
            "ix_notices_to_post",
            "created_at",
            postgresql_where=text("status = 'to_post'"),
            sqlite_where=text("status = 'to_post'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(default_factory=new_public_id, max_length=32, unique=True)
    idempotency_key: str = Field(sa_column=Column(String(200), unique=True, nullable=False))
    case_id: int | None = Field(default=None, foreign_key="cases.id")
    deadline_id: int | None = Field(default=None, foreign_key="deadlines.id")
    template: str = Field(max_length=80)
    recipient_role: str = Field(max_length=20)
    channel: str = Field(max_length=10)
    to_address: str = Field(max_length=320)
    context: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    subject: str = Field(default="", max_length=300)
    body: str = Field(default="", sa_type=Text)
    status: str = Field(default=NoticeStatus.queued, max_length=20)
    not_before: dt.datetime = utc_column(nullable=False)
    attempts: int = 0
    claimed_at: dt.datetime | None = utc_column()
    claimed_by: str | None = Field(default=None, max_length=80)
    last_error: str = Field(default="", sa_type=Text)
    provider: str | None = Field(default=None, max_length=20)
    provider_message_id: str | None = Field(default=None, max_length=100, index=True)
    created_at: dt.datetime = utc_column(nullable=False)
    sent_at: dt.datetime | None = utc_column()
    delivered_at: dt.datetime | None = utc_column()
    escalated: bool = False
    # A document sent with the email (a certificate, an invitation), or the letter
    # itself (channel "post"): a reference, so the outbox holds no copy and the bytes
    # sent or printed are exactly the stored ones.
    document_id: int | None = Field(default=None, foreign_key="documents.id")
    # Escalations (notices to advisers and managers) are acknowledged in the web app.
    acknowledged_at: dt.datetime | None = utc_column()
    acknowledged_by: str | None = Field(default=None, max_length=320)
    # Letters (channel "post"): who posted it, on which day.
    posted_on: dt.date | None = None
    posted_by: str | None = Field(default=None, max_length=320)


class DeliveryEvent(SQLModel, table=True):
    """Append-only record of every send attempt and every delivery receipt."""

    __tablename__ = "delivery_events"

    id: int | None = Field(default=None, primary_key=True)
    notice_id: int = Field(foreign_key="notices.id", index=True)
    at: dt.datetime = utc_column(nullable=False)
    source: str = Field(max_length=20)  # attempt | twilio | sendgrid | outbox
    status: str = Field(max_length=30)
    detail: str = Field(default="", sa_type=Text)
    # Providers resend webhooks; this key (unique) makes a duplicate a no-op.
    dedupe_key: str | None = Field(
        default=None, sa_column=Column(String(200), unique=True, nullable=True)
    )


class DeliveryAlarm(SQLModel, table=True):
    """An operator alarm about a whole channel, one row per (provider, kind).

    A rejected API key fails every notice on that channel at once; the manager is
    told once per episode (``episode`` numbers them, the escalation's idempotency key
    carries it), not once per notice. The episode closes when a send through that
    provider succeeds again, so the next rejection is a new alarm.
    """

    __tablename__ = "delivery_alarms"

    provider: str = Field(sa_column=Column(String(20), primary_key=True))
    kind: str = Field(sa_column=Column(String(30), primary_key=True))
    episode: int = 0
    open: bool = False
    opened_at: dt.datetime | None = utc_column()
    closed_at: dt.datetime | None = utc_column()


class WebhookBatch(SQLModel, table=True):
    """A verified webhook request, stored raw and applied later by the worker.

    Storing is one insert so the request answers at once whatever the batch size;
    the worker applies batches in ``id`` order, so a notice's receipts keep the
    order the provider sent them in.
    """

    __tablename__ = "webhook_batches"
    __table_args__ = (
        Index(
            "ix_webhook_batches_pending",
            "id",
            postgresql_where=text("applied_at IS NULL"),
            sqlite_where=text("applied_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=20)  # twilio | sendgrid
    received_at: dt.datetime = utc_column(nullable=False)
    query: str = Field(default="", max_length=2000)
    body: str = Field(default="", sa_type=Text)
    applied_at: dt.datetime | None = utc_column()
    outcome: list[str] | None = Field(default=None, sa_type=JSON)


class Role(StrEnum):
    adviser = "adviser"
    manager = "manager"
    provider = "provider"
    admin = "admin"
    # Reads the reports pages and API only: aggregates, never names or references.
    commissioner = "commissioner"


class User(SQLModel, table=True):
    """A person who signs in. Provider staff are bound to exactly one provider."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN ({_values(Role)})", name="ck_users_role"),
        CheckConstraint(
            "(role = 'provider') = (provider_id IS NOT NULL)", name="ck_users_provider_binding"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(sa_column=Column(String(320), unique=True, nullable=False))
    name: str = Field(default="", max_length=200)
    role: str = Field(max_length=20)
    provider_id: int | None = Field(default=None, foreign_key="providers.id")
    password_hash: str = Field(default="", max_length=200)
    active: bool = True
    created_at: dt.datetime = utc_column(nullable=False)
    last_login_at: dt.datetime | None = utc_column()
    failed_logins: int = 0
    locked_until: dt.datetime | None = utc_column()
    # Bumped whenever the password, the role or the active flag changes: a session
    # started under an older epoch is over, even one whose sign-in was in flight.
    session_epoch: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # Two-factor sign-in (TOTP). The secret is kept encrypted (casework.auth.seal_secret);
    # it is set, unconfirmed, while the person enrols, and on once ``totp_enabled_at`` is.
    totp_secret: str | None = Field(default=None, max_length=300)
    totp_enabled_at: dt.datetime | None = utc_column()
    # The last time step a code was accepted for: a code is never accepted twice.
    totp_last_step: int | None = None

    @property
    def mfa_on(self) -> bool:
        return self.totp_enabled_at is not None


class UserSession(SQLModel, table=True):
    """Server-side sessions, so sign-out and expiry really end them.

    The cookie holds a random token; only its SHA-256 is stored, so a database
    leak does not hand out live sessions.
    """

    __tablename__ = "user_sessions"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    user_id: int = Field(foreign_key="users.id", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: dt.datetime = utc_column(nullable=False)
    last_seen_at: dt.datetime = utc_column(nullable=False)
    expires_at: dt.datetime = utc_column(nullable=False)
    ended_at: dt.datetime | None = utc_column()
    # The user's session epoch when the password was checked (see ``User.session_epoch``).
    epoch: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # What the browser said it was, so an administrator can tell one session from another.
    user_agent: str = Field(
        default="", max_length=300, sa_column_kwargs={"server_default": text("''")}
    )


class RecoveryCode(SQLModel, table=True):
    """One-time codes for signing in without the authenticator app; only their SHA-256
    is stored (each is 50 random bits, so a fast hash is enough, as for API tokens)."""

    __tablename__ = "recovery_codes"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    code_hash: str = Field(max_length=64)
    created_at: dt.datetime = utc_column(nullable=False)
    used_at: dt.datetime | None = utc_column()


class StaffEvent(SQLModel, table=True):
    """Append-only audit of user administration and sign-in security, hash-chained.

    Who added, disabled or re-enabled a person, changed their role, reset their sign-in
    or two-factor sign-in, issued or revoked an API token or ended a session. One chain
    for the whole table (:mod:`casework.audit`), as these rows belong to no case.
    """

    __tablename__ = "staff_events"

    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = utc_column(nullable=False)
    actor: str = Field(max_length=320)
    event: str = Field(max_length=40)
    subject_id: int | None = Field(default=None, foreign_key="users.id", index=True)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    channel: str = Field(max_length=20)
    note: str = Field(default="", sa_type=Text)
    hash: str | None = Field(default=None, max_length=64)


class ApiToken(SQLModel, table=True):
    """Bearer tokens for integrations; scoped exactly like the user they belong to."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    user_id: int = Field(foreign_key="users.id", index=True)
    name: str = Field(default="", max_length=100)
    created_at: dt.datetime = utc_column(nullable=False)
    last_used_at: dt.datetime | None = utc_column()
    revoked_at: dt.datetime | None = utc_column()


class FamilyLink(SQLModel, table=True):
    """The family's own page for one case: a secret link, revocable by the adviser.

    The URL token is never stored: it is the HMAC of ``nonce`` under the service's
    secret key (so every notice can carry it again), and only its SHA-256 is kept to
    find the link from a URL. A database copied without the secret key opens no page.
    ``locked_until`` is the wait after too many wrong codes.
    """

    __tablename__ = "family_links"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    nonce: str = Field(max_length=64)
    token_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    created_at: dt.datetime = utc_column(nullable=False)
    created_by: str = Field(max_length=320)
    revoked_at: dt.datetime | None = utc_column()
    revoked_by: str | None = Field(default=None, max_length=320)
    locked_until: dt.datetime | None = utc_column()


class FamilyCode(SQLModel, table=True):
    """A one-time code sent to the family to open its page; only its keyed hash is kept."""

    __tablename__ = "family_codes"
    __table_args__ = (
        CheckConstraint("channel IN ('sms', 'email')", name="ck_family_codes_channel"),
    )

    id: int | None = Field(default=None, primary_key=True)
    link_id: int = Field(foreign_key="family_links.id", index=True)
    code_hash: str = Field(max_length=64)
    channel: str = Field(max_length=10)
    sent_at: dt.datetime = utc_column(nullable=False)
    expires_at: dt.datetime = utc_column(nullable=False)
    tries: int = 0
    used_at: dt.datetime | None = utc_column()
