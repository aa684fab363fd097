"""The unit of work every writer shares: one transaction, one audit row, clock bookkeeping.

A use case loads what it needs, changes rows in memory, appends exactly one audit
event built by :func:`audit_event`, opens, meets or cancels clocks through
:class:`Clocks`, and commits once inside :func:`case_transaction`. Any failure
rolls everything back, so a case is never left moved without its audit event or
its clocks.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import bindparam, event, func, literal_column, null, or_, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, col

from casework import audit, driver
from casework import deadlines as dl
from casework.audit import CHAIN_END, LOCKED_CHAIN_END
from casework.cases.context import Actor, TransitionContext
from casework.cases.errors import Conflict, NotFound, ValidationFailed, WriteRefusedAfterRead
from casework.config import Settings
from casework.deadlines import Clock, DeadlineKind
from casework.driver import fixed
from casework.models import (
    MISSED_OUTSTANDING,
    AgreementItem,
    Allocation,
    AllocationStatus,
    Case,
    CaseEvent,
    Deadline,
    DeadlineStatus,
    Document,
    Person,
    Provider,
    User,
)

_UseCase = TypeVar("_UseCase", bound=Callable[..., Any])


@contextmanager
def case_transaction(session: Session, reference: str) -> Iterator[None]:
    """Roll back on any failure; report a lost race between two writers as a Conflict.

    Two writers on one case: the version check (or SQLite's lock) lets one win. On
    PostgreSQL the loser's ``UPDATE ... WHERE version = n`` matches no row
    (StaleDataError). On SQLite in WAL mode the loser read an older snapshot and
    cannot upgrade it to a write ("database is locked"); that is the same race.
    Any other OperationalError is a real failure and is re-raised unchanged.
    """
    try:
        yield
    except (StaleDataError, OperationalError) as exc:
        # The versions read of the cases this attempt was changing (their UPDATE checks
        # the version), taken before the rollback expires them.
        read = {
            obj.id: sa_inspect(obj).committed_state.get("version", obj.__dict__["version"])
            for obj in list(session.dirty)
            if isinstance(obj, Case) and "version" in obj.__dict__ and obj.id is not None
        }
        session.rollback()
        if isinstance(exc, OperationalError) and not any(
            word in str(exc.orig).lower() for word in ("locked", "busy", "deadlock")
        ):
            raise
        words = (
            f"{reference} was changed by someone else at the same moment; reload it and try again"
        )
        if refused_after_a_stale_read(session, exc):
            raise WriteRefusedAfterRead(words, read) from exc
        raise Conflict(words) from exc
    except Exception:
        session.rollback()
        raise


def begin_as_writer(session: Session) -> None:
    """End the reads so far (committing them) and begin again as the writer: BEGIN
    IMMEDIATE on SQLite, which waits its turn; PostgreSQL ignores the option.

    Why: a SQLite transaction takes its snapshot at its first read, and a write from a
    snapshot another writer's commit has made stale is refused ("database is locked")
    instead of waiting. Beginning as the writer after the reads also keeps SQLite's one
    write lock for the writes only, not for the reads before them.
    """
    session.commit()
    session.connection(execution_options={"claim": True})


def refused_after_a_stale_read(session: Session, exc: BaseException) -> bool:
    """SQLite refused a write because another writer committed after this transaction
    read ("database is locked": its snapshot went stale). Run as the writer from the
    start (:func:`runs_again_as_writer`), the same work cannot be refused again."""
    return (
        isinstance(exc, OperationalError)
        and session.get_bind().dialect.name == "sqlite"
        and any(word in str(exc.orig).lower() for word in ("locked", "busy"))
    )


def runs_again_as_writer(use_case: _UseCase) -> _UseCase:
    """Run a use case once more, as SQLite's writer, when SQLite refused its first write.

    SQLite refuses a write from a transaction whose reads another writer's commit made
    stale, whatever that writer changed: the sweep, a sender, someone on another case.
    Without this the adviser was told their case "was changed by someone else" when
    nobody had touched it. The second run begins as the writer (BEGIN IMMEDIATE waits
    its turn), so it cannot be refused again. A case the first run was changing is held
    to the version it read: a real change to that case meanwhile is still a Conflict,
    as on PostgreSQL, whose version-checked UPDATE waits and then finds the version
    moved. Rows only added to a case (a note) are added to it as it now is, as there.
    A caller's own changes still pending in the session cannot be run again: then the
    refusal stands. PostgreSQL never raises it. The first argument is the session.
    """

    @functools.wraps(use_case)
    def run(session: Session, *args: Any, **kwargs: Any) -> Any:
        callers_changes = bool(session.new or session.dirty or session.deleted)
        try:
            return use_case(session, *args, **kwargs)
        except WriteRefusedAfterRead as refused:
            if callers_changes:
                raise
            session.connection(execution_options={"claim": True})  # BEGIN IMMEDIATE
            if refused.versions_read:
                rows = session.execute(
                    select(col(Case.id), col(Case.version)).where(
                        col(Case.id).in_(list(refused.versions_read))
                    )
                ).all()
                now_at = {row[0]: row[1] for row in rows}
                if any(now_at.get(i) != v for i, v in refused.versions_read.items()):
                    session.rollback()
                    raise Conflict(str(refused)) from refused
            return use_case(session, *args, **kwargs)

    return run  # type: ignore[return-value]


def check_seen_version(case: Case, expected_version: int | None) -> None:
    """Refuse a change made from a case as it was before someone else changed it.

    ``expected_version`` is the version the person's form was drawn from (None: the
    door has no form, as the CLI). Every use case that takes one checks it here, so
    the rule and its words are the same through every door.
    """
    if expected_version is not None and case.version != expected_version:
        from casework.cases.words import state_words

        raise Conflict(
            f"{case.reference} was changed by someone else (it is now"
            f" {state_words(case.state)}); reload it and try again"
        )


def require_aware(now: dt.datetime) -> dt.datetime:
    """The moment of recording, in UTC; a naive time would be read in the wrong zone."""
    if now.tzinfo is None:
        raise ValidationFailed(
            "the time of an event must include its zone (e.g. 2026-11-27T10:00Z)"
        )
    return now.astimezone(dt.UTC)


def jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in data.items()}


@lru_cache(maxsize=16)
def _field_defaults(cls: Any) -> tuple[dict[str, Any], tuple[tuple[str, Any], ...]]:
    """A model's plain defaults and its default factories, read once per class."""
    plain: dict[str, Any] = {}
    factories: list[tuple[str, Any]] = []
    for name, info in cls.model_fields.items():
        if info.default_factory is not None:
            factories.append((name, info.default_factory))
        elif not info.is_required():
            plain[name] = info.default
    return plain, tuple(factories)


def new_row(cls: Any, **values: Any) -> Any:
    """A new row object, as ``cls(**values)`` but without SQLModel's field-by-field
    construction (a third of a millisecond an object, per audit row and clock on the
    transition path): defaults filled, columns set directly, no session involved."""
    plain, factories = _field_defaults(cls)
    obj = sa_inspect(cls).class_manager.new_instance()
    state = obj.__dict__
    state.update(plain)
    for name, factory in factories:
        if name not in values:
            state[name] = factory()
    state.update(values)
    return obj


def audit_event(
    case: Case,
    *,
    actor: Actor,
    event: str,
    at: dt.datetime,
    from_state: str | None,
    data: Mapping[str, Any] | None = None,
    note: str = "",
    channel: str | None = None,
) -> CaseEvent:
    """The one audit row a change appends; every writer builds it here.

    Its place in the case's hash chain is sealed when it is written
    (:func:`casework.audit.seal_new_rows`, installed below): only then is the row
    before it known, including one added earlier in the same transaction.
    """
    return new_row(
        CaseEvent,
        case_id=case.id,
        at=at,
        actor=actor.id,
        event=event,
        from_state=from_state,
        to_state=case.state,
        data=jsonable(data or {}),
        channel=channel or actor.channel,
        note=note,
    )


# Every audit row any session writes is sealed into its case's chain.
if not event.contains(Session, "before_flush", audit.seal_new_rows):
    event.listen(Session, "before_flush", audit.seal_new_rows)


# Statements built once: building a select() costs more Python time than running it.
# The statuses are written in (driver.fixed): on SQLite a status sent as a parameter
# had the statement prepared again on every run (a partial index names the column).
_LIVE = (col(Deadline.status) == fixed(DeadlineStatus.open)) | (
    (col(Deadline.status) == fixed(DeadlineStatus.missed))
    & (
        col(Deadline.next_action_at).is_not(None)
        | (col(Deadline.closed_reason) == MISSED_OUTSTANDING)
    )
)
_LIVE_DEADLINES = select(Deadline).where(col(Deadline.case_id) == bindparam("case_id"), _LIVE)
CASE_FAMILY_PROVIDER = (
    select(Case, Person, Provider)
    .outerjoin(Person, (col(Person.case_id) == Case.id) & (col(Person.role) == "family"))
    .outerjoin(Provider, col(Provider.id) == Case.provider_id)
    .where(col(Case.reference) == bindparam("reference"))
)


# A transition's one read: the case, its family contact, its provider and its live
# clocks (one row per clock; the ORM's identity map keeps one Case).
CASE_WITH_CLOCKS = (
    select(Case, Person, Provider, Deadline)
    .outerjoin(Person, (col(Person.case_id) == Case.id) & (col(Person.role) == "family"))
    .outerjoin(Provider, col(Provider.id) == Case.provider_id)
    .outerjoin(Deadline, (col(Deadline.case_id) == Case.id) & _LIVE)
    .where(col(Case.reference) == bindparam("reference"))
    .order_by(col(Deadline.id))
)


def not_found(reference: str) -> NotFound:
    return NotFound(
        f"There is no case with the reference {reference.strip()!r}."
        " Check the reference (it looks like MED-2026-0042), or search for the family."
    )


def load_case(session: Session, reference: str) -> tuple[Case, Person | None, Provider | None]:
    """The case, its family contact and its provider in one query."""
    row = session.execute(CASE_FAMILY_PROVIDER, {"reference": reference.strip().upper()}).first()
    if row is None:
        raise not_found(reference)
    return row[0], row[1], row[2]


class LoadedCase(NamedTuple):
    """What a step reads, in one statement: the case, its family contact, its provider,
    its live clocks, and (when asked for) its audit chain's end, the actor's name and
    the year's last certificate number."""

    case: Case
    family: Person | None
    provider: Provider | None
    live: list[Deadline]
    chain_end: str | None = None
    actor_name: str | None = None
    last_certificate: str | None = None
    provider_accepted: bool | None = None


def live_allocation_id(case_id: Any) -> Any:
    """The id of a case's live allocation: its newest offered or accepted one (a case has
    at most one). ``case_id``: a parameter, or the id column of the query it sits in.

    One rule for every reader: the step that ends it, the session's own lookup
    (:func:`casework.cases.effects.live_allocation`) and the case page's head row.
    Written without IN, so the driver (:mod:`casework.driver`) can run it.
    """
    return (
        select(func.max(col(Allocation.id)))
        .where(
            col(Allocation.case_id) == case_id,
            or_(
                col(Allocation.status) == AllocationStatus.offered.value,
                col(Allocation.status) == AllocationStatus.accepted.value,
            ),
        )
        .scalar_subquery()
    )


# The acting person's name (printed on a certificate) and the year's highest
# certificate number (the next one is one more): read with the case, not after it.
_ACTOR_NAME = (
    select(col(User.name)).where(col(User.email) == bindparam("who")).limit(1).scalar_subquery()
)
_LAST_CERTIFICATE = (
    select(col(Document.certificate_number))
    # The year's numbers as a range of the index (``MC-2026-`` up to ``MC-2026.``), not
    # LIKE: SQLite cannot search an index for a LIKE pattern given as a parameter and
    # scanned it, a third of a certificate step's read.
    .where(
        col(Document.certificate_number) >= bindparam("number_from"),
        col(Document.certificate_number) < bindparam("number_to"),
    )
    .order_by(col(Document.certificate_number).desc())
    .limit(1)
    .scalar_subquery()
)


def _numbers_of(prefix: str) -> tuple[str, str]:
    """The range of certificate numbers starting with ``prefix``: from it (inclusive) to
    the prefix with its last character the next one (exclusive)."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


# Whether the case's provider holds an accepted allocation of it (what the family's
# notices need to know before they may name the provider), read with the case.
# ``provider_id + 0`` keeps SQLite on the case's index: on provider_id's own it
# searched every allocation the provider ever had, a cost growing with the caseload.
_PROVIDER_ACCEPTED = (
    select(col(Allocation.id))
    .where(
        col(Allocation.case_id) == col(Case.id),
        col(Allocation.provider_id) + 0 == col(Case.provider_id),
        col(Allocation.status) == AllocationStatus.accepted,
    )
    .correlate(Case)
    .exists()
)


@lru_cache(maxsize=4)
def _case_with_clocks(chain_end: bool, certificate: bool) -> Any:
    """CASE_WITH_CLOCKS with the extra columns asked for, built once per combination."""
    extra: list[Any] = [_PROVIDER_ACCEPTED.label("provider_accepted")]
    if chain_end:
        extra.append(CHAIN_END.label("chain_end"))
    if certificate:
        extra += [_ACTOR_NAME.label("actor_name"), _LAST_CERTIFICATE.label("last_certificate")]
    return CASE_WITH_CLOCKS.add_columns(*extra)


def load_case_with_clocks(
    session: Session,
    reference: str,
    *,
    chain_end: bool = False,
    certificate_for: tuple[str, str] | None = None,
) -> LoadedCase:
    """The case, its family contact, its provider and its live clocks in ONE query.

    ``chain_end``: also read the last hash of the case's audit chain, so sealing the
    step's audit row needs no statement of its own. Only sound on SQLite, whose
    writers take turns and whose writer with a stale snapshot is refused: the end read
    here is then the end the row is written after. (On PostgreSQL the case row must be
    locked before the end is read, :func:`casework.audit._chain_ends`.)
    Whether the case's provider has accepted it comes too (``provider_accepted``).
    ``certificate_for``: (the actor's email, the certificate number prefix such as
    ``MC-2026-``): also read the actor's name and the year's last number, for a step
    that issues a certificate.
    """
    params: dict[str, Any] = {"reference": reference.strip().upper()}
    if certificate_for is not None:
        params["who"], prefix = certificate_for
        params["number_from"], params["number_to"] = _numbers_of(prefix)
    stmt = _case_with_clocks(chain_end, certificate_for is not None)
    rows = session.execute(stmt, params).all()
    if not rows:
        raise not_found(reference)
    first = rows[0]
    case, family, provider = first[0], first[1], first[2]
    clocks: dict[int, Deadline] = {}
    for row in rows:
        if row[3] is not None:
            clocks.setdefault(id(row[3]), row[3])
    extra = list(first[4:])
    accepted = bool(extra.pop(0))
    end = (extra.pop(0) or "") if chain_end else None
    name, last = (extra[0], extra[1]) if certificate_for is not None else (None, None)
    return LoadedCase(case, family, provider, list(clocks.values()), end, name, last, accepted)


# --- The same load on Core: plain rows, objects built outside the session --------------

_PERSONS: Any = Person.__table__  # type: ignore[attr-defined]
_PROVIDERS: Any = Provider.__table__  # type: ignore[attr-defined]


class _Rows(NamedTuple):
    """A Core load's statement and where each entity's columns sit in its rows."""

    stmt: Any
    case: tuple[str, ...]
    family: tuple[str, ...]
    provider: tuple[str, ...]
    deadline: tuple[str, ...]


@lru_cache(maxsize=4)
def _core_case_with_clocks(chain_end: bool, certificate: bool) -> _Rows:
    """CASE_WITH_CLOCKS as a Core select of plain columns, built once per combination.

    The ORM's loading (identity map, per-row instance events) cost more than the query;
    the rows here are turned into objects by :func:`_detached`.
    """
    cases, persons, providers, deadlines = _CASES, _PERSONS, _PROVIDERS, _DEADLINES
    extra: list[Any] = [_PROVIDER_ACCEPTED.label("provider_accepted")]
    if chain_end:
        extra.append(CHAIN_END.label("chain_end"))
    if certificate:
        extra += [_ACTOR_NAME.label("actor_name"), _LAST_CERTIFICATE.label("last_certificate")]
    stmt = (
        select(*cases.c, *persons.c, *providers.c, *deadlines.c, *extra)
        .select_from(cases)
        .outerjoin(persons, (persons.c.case_id == cases.c.id) & (persons.c.role == "family"))
        .outerjoin(providers, providers.c.id == cases.c.provider_id)
        .outerjoin(deadlines, (deadlines.c.case_id == cases.c.id) & _LIVE)
        .where(cases.c.reference == bindparam("reference"))
        .order_by(deadlines.c.id)
    )
    names = [tuple(c.key for c in t.c) for t in (cases, persons, providers, deadlines)]
    return _Rows(stmt, *names)


_MANAGERS: dict[Any, Any] = {
    cls: sa_inspect(cls).class_manager for cls in (Case, Person, Provider, Deadline)
}


def _detached(cls: Any, keys: tuple[str, ...], values: Any) -> Any:
    """An object as the ORM would load it (its columns set, no history), but in no
    session: it is given its identity (what ``make_transient_to_detached`` does), so
    changes to it are tracked as changes to a stored row (:func:`write_detached_step`
    writes them, or the session does once it is added back)."""
    obj = _MANAGERS[cls].new_instance()
    state = obj.__dict__
    state.update(zip(keys, values, strict=True))
    # What make_transient_to_detached does for a fresh object whose every column is
    # set (no history to commit, nothing to expire): give it its identity key.
    obj._sa_instance_state.key = (cls, (state["id"],), None)
    return obj


def may_load_detached(session: Session) -> bool:
    """Whether a step may be loaded outside ``session``: the session holds no case or
    clock already (or two copies of one row would clash when the step's case and
    clocks are added back, see :func:`write_detached_step`)."""
    return not any(key[0] is Case or key[0] is Deadline for key in session.identity_map.keys())  # noqa: SIM118


def release_case_rows(session: Session) -> None:
    """Let go of the cases and clocks a door read for its own checks or page, so the
    step that follows is loaded and written on Core (:func:`may_load_detached`).

    A web door reads the case first (to answer 404, or to know which form fields an
    event has); the objects it read stay usable, detached, with what they held. Only
    an unchanged session is released: a caller's pending change keeps its rows (the
    step then runs on the unit of work, with them).
    """
    if session.new or session.dirty or session.deleted:
        return
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Case | Deadline):
            session.expunge(obj)


def load_case_detached(
    session: Session,
    reference: str,
    *,
    chain_end: bool = False,
    certificate_for: tuple[str, str] | None = None,
) -> LoadedCase:
    """:func:`load_case_with_clocks` on Core: the same one statement, with the case,
    family, provider and clocks built outside the session (detached, with identity).

    Only for a step whose caller has nothing pending in the session (then nothing else
    in the session can hold these rows): :func:`write_detached_step` writes the step.
    """
    params: dict[str, Any] = {"reference": reference.strip().upper()}
    if certificate_for is not None:
        params["who"], prefix = certificate_for
        params["number_from"], params["number_to"] = _numbers_of(prefix)
    shape = _core_case_with_clocks(chain_end, certificate_for is not None)
    rows = driver.rows(session.connection(), shape.stmt, params)
    if not rows:
        raise not_found(reference)
    first = rows[0]
    a = len(shape.case)
    b = a + len(shape.family)
    c = b + len(shape.provider)
    d = c + len(shape.deadline)
    case = _detached(Case, shape.case, first[:a])
    family = _detached(Person, shape.family, first[a:b]) if first[a] is not None else None
    provider = _detached(Provider, shape.provider, first[b:c]) if first[b] is not None else None
    live = [_detached(Deadline, shape.deadline, row[c:d]) for row in rows if row[c] is not None]
    extra = list(first[d:])
    accepted = bool(extra.pop(0))
    end = (extra.pop(0) or "") if chain_end else None
    name, last = (extra[0], extra[1]) if certificate_for is not None else (None, None)
    return LoadedCase(case, family, provider, live, end, name, last, accepted)


def live_deadlines(session: Session, case: Case) -> list[Deadline]:
    """The case's live clocks: open ones, and missed ones still escalating or outstanding."""
    return list(session.execute(_LIVE_DEADLINES, {"case_id": case.id}).scalars())


def _still_live(deadline: Deadline) -> bool:
    """A missed clock still escalating, or still outstanding (listed as late)."""
    return deadline.next_action_at is not None or deadline.closed_reason == MISSED_OUTSTANDING


def _close(deadline: Deadline, status: DeadlineStatus, now: dt.datetime, reason: str) -> None:
    deadline.status = status
    deadline.closed_at = now
    deadline.closed_reason = reason[:200]
    deadline.next_action_at = None


class Clocks:
    """A case's live clocks during one change: open new ones, meet or cancel others.

    Meeting a clock compares the date the act HAPPENED with the due date, never the
    moment it was typed in: an adviser who records a call the next morning gets the
    same outcome as one who recorded it at once.
    """

    def __init__(
        self,
        session: Session,
        case: Case,
        now: dt.datetime,
        live: list[Deadline] | None = None,
        *,
        detached: bool = False,
    ) -> None:
        """``live``: the case's live clocks when already loaded with it; ``detached``:
        the step was loaded outside the session (:func:`load_case_detached`), so its
        audit row is kept here, not added to the session, until
        :func:`write_detached_step` writes it."""
        self.session = session
        self.detached = detached
        self.audit_rows: list[CaseEvent] = []
        self.case = case
        self.now = now
        self.live = live if live is not None else live_deadlines(session, case)
        self.opened: list[Deadline] = []

    def open(self, clock: Clock) -> Deadline:
        deadline = new_row(
            Deadline,
            case_id=self.case.id,
            kind=clock.kind,
            due_date=clock.due,
            due_at=clock.due_at(),
            status=DeadlineStatus.open,
            citation=clock.citation,
            explanation=clock.explanation,
            opened_at=self.now,
            # The next sweep works out this clock's first reminder from the rules in
            # config, so the rules live in one place (casework.reminders).
            next_action_at=self.now,
        )
        # Added at once even for a detached step: the order clocks are added in is
        # the order the unit of work inserts them when it writes the step (their ids).
        self.session.add(deadline)
        self.live.append(deadline)
        self.opened.append(deadline)
        return deadline

    def of(self, kinds: Iterable[DeadlineKind]) -> list[Deadline]:
        wanted = set(kinds)
        return [
            d
            for d in self.live
            if d.kind in wanted
            and (
                d.status == DeadlineStatus.open
                or (d.status == DeadlineStatus.missed and _still_live(d))
            )
        ]

    def meet(
        self, kinds: Iterable[DeadlineKind], *, done_on: dt.date, reason: str
    ) -> list[Deadline]:
        """Close clocks: met if done by their due date, else missed ("done late").

        A clock the sweep already marked missed stays missed, but its escalations stop:
        the act has now been done, late.
        """
        closed = self.of(kinds)
        for deadline in closed:
            self.meet_one(deadline, done_on=done_on, reason=reason)
        return closed

    def meet_one(self, deadline: Deadline, *, done_on: dt.date, reason: str) -> None:
        late = f" (late: done {dl.fmt(done_on)})"
        on_time = done_on <= deadline.due_date
        if deadline.status == DeadlineStatus.open or (
            # The sweep marked it missed because nobody had recorded the act yet; the
            # act itself was done in time (recorded late), so the clock was met.
            on_time and deadline.status == DeadlineStatus.missed and _still_live(deadline)
        ):
            status = DeadlineStatus.met if on_time else DeadlineStatus.missed
            _close(deadline, status, self.now, reason + ("" if on_time else late))
            deadline.done_on = done_on
        elif deadline.status == DeadlineStatus.missed and _still_live(deadline):
            deadline.next_action_at = None
            deadline.closed_reason = (reason + late)[:200]
            deadline.done_on = done_on

    def cancel(self, reason: str, kinds: Iterable[DeadlineKind] | None = None) -> None:
        """Cancel open clocks the case no longer needs; stop escalating missed ones."""
        for deadline in self.of(kinds) if kinds is not None else list(self.live):
            self.cancel_one(deadline, reason)

    def cancel_one(self, deadline: Deadline, reason: str) -> None:
        if deadline.status == DeadlineStatus.open:
            _close(deadline, DeadlineStatus.cancelled, self.now, reason)
        elif deadline.status == DeadlineStatus.missed and _still_live(deadline):
            deadline.next_action_at = None
            deadline.closed_reason = (deadline.closed_reason + f"; then {reason}")[:200]


# --- The transition's writes as Core statements ----------------------------------------------

_CASES: Any = Case.__table__  # type: ignore[attr-defined]
_DEADLINES: Any = Deadline.__table__  # type: ignore[attr-defined]
_EVENTS: Any = CaseEvent.__table__  # type: ignore[attr-defined]


# Statements of every column (a new row's object holds them all), run on the driver.
_INSERT_EVENT = driver.insert_every_column(_EVENTS)
_INSERT_DEADLINE = driver.insert_every_column(_DEADLINES).returning(_DEADLINES.c.id)
_EVENT_COLUMNS = tuple(c.name for c in _EVENTS.c if not c.primary_key)
_DEADLINE_COLUMNS = tuple(c.name for c in _DEADLINES.c if not c.primary_key)


@lru_cache(maxsize=512)
def _update_case(columns: tuple[str, ...]) -> Any:
    """UPDATE of these columns, version-checked and bumped; built once per column set."""
    values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in columns}
    values["version"] = bindparam("v_version")
    return (
        update(_CASES)
        .where(_CASES.c.id == bindparam("w_id"), _CASES.c.version == bindparam("w_version"))
        .values(values)
    )


@lru_cache(maxsize=512)
def _update_case_returning_chain_end(columns: tuple[str, ...]) -> Any:
    """PostgreSQL: the version-checked UPDATE also returns the case's chain end, read
    once the UPDATE holds the row (:data:`LOCKED_CHAIN_END`): the seal then needs no
    statement of its own."""
    return _update_case(columns).returning(LOCKED_CHAIN_END)


@lru_cache(maxsize=512)
def _update_deadline(columns: tuple[str, ...]) -> Any:
    return (
        update(_DEADLINES)
        .where(_DEADLINES.c.id == bindparam("w_id"))
        .values({name: bindparam(f"v_{name}") for name in columns})
    )


def _write_clocks(conn: Any, changed: list[Deadline], opened: list[Deadline]) -> None:
    """The step's clocks, met or cancelled and opened, in as few statements as can be.

    Clocks changed alike (the same columns: two cancelled together) are one
    ``executemany``; a step that both closes clocks and opens one (a decline, a meeting
    moved) writes the largest such group and the new clocks as ONE upsert
    (:func:`_upsert_clocks`). Any other group is its own statement.
    """
    groups: dict[tuple[str, ...], list[Deadline]] = {}
    for deadline in changed:
        names = _changed(deadline)
        if names:
            groups.setdefault(names, []).append(deadline)
    ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
    if opened and ordered and all(_whole(d) for d in ordered[0][1]):
        names, together = ordered.pop(0)
        _upsert_clocks(conn, names, together, opened)
        opened = []
    for names, alike in ordered:
        params = [
            {"w_id": d.id, **{f"v_{name}": getattr(d, name) for name in names}} for d in alike
        ]
        if len(params) == 1:
            driver.rowcount(conn, _update_deadline(names), params[0])
        else:
            driver.execute_many(conn, _update_deadline(names), params)
    for deadline in opened:
        cursor = driver.execute(conn, _INSERT_DEADLINE, _columns(deadline, _DEADLINE_COLUMNS))
        deadline.id = cursor.fetchone()[0]
        cursor.close()


def _whole(deadline: Deadline) -> bool:
    """Every column of a loaded clock is in memory (an upsert's row must give them all)."""
    held = deadline.__dict__
    return all(name in held for name in _DEADLINE_COLUMNS)


def _upsert_clocks(
    conn: Any, names: tuple[str, ...], changed: list[Deadline], opened: list[Deadline]
) -> None:
    """Clocks changed alike and clocks opened, as one INSERT ... ON CONFLICT (id) DO UPDATE.

    A changed clock is proposed with its id and every column (as loaded, so its NOT
    NULL and CHECK constraints hold), and only ``names`` are taken from it: the rest of
    the stored row is left as it is, as the UPDATE of those columns would. A new clock
    has no id (the database numbers it, in the order given: SQLite after its highest
    rowid, PostgreSQL from its sequence), so its ids are the ones returned that were not
    sent, in ascending order.
    """
    stmt = _upsert_deadlines(conn.dialect.name, names, len(changed), len(opened))
    params: dict[str, Any] = {}
    for i, deadline in enumerate([*changed, *opened]):
        if i < len(changed):
            params[f"r{i}_id"] = deadline.id
        for name, value in _columns(deadline, _DEADLINE_COLUMNS).items():
            params[f"r{i}_{name}"] = value
    sent = {d.id for d in changed}
    new_ids = sorted(row[0] for row in driver.rows(conn, stmt, params) if row[0] not in sent)
    for deadline, new_id in zip(opened, new_ids, strict=True):
        deadline.id = new_id


@lru_cache(maxsize=64)
def _upsert_deadlines(dialect: str, names: tuple[str, ...], changed: int, opened: int) -> Any:
    """The upsert of ``changed`` clocks (columns ``names``) and ``opened`` new ones,
    built once per shape and database (the conflict clause is each dialect's own)."""
    table = _DEADLINES
    rows: list[dict[str, Any]] = []
    for i in range(changed + opened):
        row: dict[str, Any] = {
            "id": bindparam(f"r{i}_id", type_=table.c.id.type)
            if i < changed
            # PostgreSQL's DEFAULT takes the sequence; SQLite numbers a NULL rowid.
            else (literal_column("DEFAULT") if dialect == "postgresql" else null())
        }
        for name in _DEADLINE_COLUMNS:
            row[name] = bindparam(f"r{i}_{name}", type_=table.c[name].type)
        rows.append(row)
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt: Any = insert(table).values(rows)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.id], set_={name: stmt.excluded[name] for name in names}
    ).returning(table.c.id)


def _changed(obj: Any) -> tuple[str, ...]:
    """The columns set on ``obj`` since it was loaded (its ORM history)."""
    return tuple(sorted(k for k in sa_inspect(obj).committed_state if k != "version"))


def _columns(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """A new row's values for an INSERT of every column (a column never set is None)."""
    values = obj.__dict__
    return {name: values.get(name) for name in names}


def write_step(
    session: Session,
    case: Case,
    clocks: Clocks,
    chain_end: str | None = None,
    *,
    changed: list[Deadline] | None = None,
) -> bool:
    """Write one step's changes with Core statements built once per process; False when
    the step changed anything else (then the session's unit of work writes it all).

    The ORM's flush costs more than the statements it sends: sorting the units of work,
    per-object events, identity bookkeeping. A transition changes the same few rows
    every time (the case, its clocks, one audit row), so they are written here: the
    version-checked UPDATE of the case (a lost race raises StaleDataError, a Conflict,
    as the ORM's would; on PostgreSQL it also returns the chain's end, read once it
    holds the row), the audit row sealed into its chain (:func:`audit.seal_rows`), the
    clocks met or cancelled and the clocks opened. The written objects then leave the
    session (still readable), so the commit has nothing left to flush. ``chain_end``:
    the case's chain end, read with the case in this transaction (SQLite only,
    :func:`load_case_with_clocks`).
    ``changed``: the case's loaded clocks when they are in no session
    (:func:`write_detached_step`); the case then is in none either.
    """
    if session.deleted:
        return False
    live = {id(d) for d in clocks.live}
    opened = {id(d) for d in clocks.opened}
    audit_rows: list[CaseEvent] = []
    for obj in session.new:
        if isinstance(obj, CaseEvent) and obj.case_id == case.id:
            audit_rows.append(obj)
        elif not (isinstance(obj, Deadline) and id(obj) in opened):
            return False
    changed_clocks: list[Deadline] = []
    if changed is not None:
        changed_clocks = [d for d in changed if sa_inspect(d).committed_state]
    else:
        for obj in session.dirty:
            if isinstance(obj, Deadline) and id(obj) in live and id(obj) not in opened:
                changed_clocks.append(obj)
            elif obj is not case:
                return False
    conn = session.connection()
    loaded_version = sa_inspect(case).committed_state.get("version", case.version)
    columns = _changed(case)
    params = {f"v_{name}": getattr(case, name) for name in columns}
    params.update(v_version=loaded_version + 1, w_id=case.id, w_version=loaded_version)
    if chain_end is None and conn.dialect.name == "postgresql":
        updated = driver.rows(conn, _update_case_returning_chain_end(columns), params)
        if len(updated) != 1:
            raise StaleDataError(f"{case.reference} changed since it was read")
        chain_end = updated[0][0] or ""
    elif driver.rowcount(conn, _update_case(columns), params) != 1:
        raise StaleDataError(f"{case.reference} changed since it was read")
    audit_rows.sort(key=lambda o: sa_inspect(o).insert_order)
    audit_rows += clocks.audit_rows  # a detached step's own, made after any above
    rows = [_columns(o, _EVENT_COLUMNS) for o in audit_rows]
    known = {case.id: chain_end} if chain_end is not None and case.id is not None else None
    audit.seal_rows(conn, rows, known)
    if len(rows) == 1:
        driver.execute(conn, _INSERT_EVENT, rows[0]).close()
    elif rows:
        driver.execute_many(conn, _INSERT_EVENT, rows)
    _write_clocks(conn, changed_clocks, clocks.opened)
    for obj, row in zip(audit_rows, rows, strict=True):
        obj.hash = row["hash"]
    for obj in [case, *changed_clocks] if changed is None else []:
        session.expunge(obj)
    for obj in [*clocks.opened, *audit_rows]:
        if obj in session:
            session.expunge(obj)
    case.version = loaded_version + 1
    if changed is not None:
        # Written: what the objects hold is now the stored row (no history left that a
        # session they are later added to would write again).
        for obj in [case, *changed_clocks]:
            state = sa_inspect(obj)
            state._commit_all(state.dict)
    return True


def write_detached_step(
    session: Session, case: Case, clocks: Clocks, chain_end: str | None = None
) -> bool:
    """:func:`write_step` for a step loaded by :func:`load_case_detached`.

    The case and its loaded clocks are in no session; their changes are read from
    their attribute history. When the step changed anything else in the session (an
    allocation ended, an agreed action added), they are added back to the session
    and False is returned: the unit of work then writes everything at commit.
    """
    opened = {id(d) for d in clocks.opened}
    others = bool(session.dirty or session.deleted) or any(
        not (
            (isinstance(obj, CaseEvent) and obj.case_id == case.id)
            or (isinstance(obj, Deadline) and id(obj) in opened)
        )
        for obj in session.new
    )
    loaded = [d for d in clocks.live if id(d) not in opened]
    if others:
        session.add_all([case, *loaded, *clocks.audit_rows])
        clocks.audit_rows.clear()
        return False
    return write_step(session, case, clocks, chain_end, changed=loaded)


def record_change(
    session: Session,
    case: Case,
    *,
    actor: Actor,
    event: str,
    at: dt.datetime,
    from_state: str | None,
    settings: Settings,
    data: Mapping[str, Any] | None = None,
    note: str = "",
    channel: str | None = None,
    family: Person | None = None,
    provider: Provider | None = None,
    clocks: Clocks | None = None,
    agreement_items: list[AgreementItem] | None = None,
    attachments: Mapping[str, int] | None = None,
    provider_accepted: bool | None = None,
) -> CaseEvent:
    """Append the change's audit row and queue the notices it causes, in its transaction.

    Record now, send later: the notices are rows in the same commit as the change, so
    a change is never told without having happened, nor happens untold.
    ``provider_accepted``: whether the provider had accepted the case when it was read
    in this transaction (None: not read; it is then queried, see :func:`_has_accepted`).
    """
    from casework.notices import queue_event_notices

    audit = audit_event(
        case,
        actor=actor,
        event=event,
        at=at,
        from_state=from_state,
        data=data,
        note=note,
        channel=channel,
    )
    if clocks is not None and clocks.detached:
        clocks.audit_rows.append(audit)
    else:
        session.add(audit)
    queue_event_notices(
        session,
        TransitionContext(
            case=case,
            family=family,
            event=event,
            from_state=from_state,
            to_state=case.state,
            data=audit.data,
            now=at,
            actor=actor,
            settings=settings,
            opened=clocks.opened if clocks is not None else [],
            provider=provider,
            provider_accepted=_has_accepted(session, case, provider, provider_accepted),
            agreement_items=agreement_items or [],
            attachments=dict(attachments or {}),
        ),
    )
    return audit


def _has_accepted(
    session: Session, case: Case, provider: Provider | None, read: bool | None = None
) -> bool:
    """Whether ``provider`` holds an accepted allocation of ``case`` (as changed in memory).

    The rows are read without flushing and their status judged in Python, so an
    acceptance recorded by this very change (not yet flushed) counts.
    """
    if provider is None or provider.id is None or case.id is None:
        return False
    # A case has one live (offered or accepted) allocation at a time, and the step's
    # handler has usually loaded it already: judged from memory, the step saves a query.
    live = [
        a
        for a in session.identity_map.values()
        if isinstance(a, Allocation)
        and a.case_id == case.id
        and a.status in (AllocationStatus.offered, AllocationStatus.accepted)
    ]
    if live:
        return any(
            a.provider_id == provider.id and a.status == AllocationStatus.accepted for a in live
        )
    if read is not None:  # read with the case in this transaction; unchanged since
        return read
    with session.no_autoflush:
        rows = session.execute(
            select(Allocation).where(
                # + 0: the case's index, not every allocation of the provider (above).
                col(Allocation.case_id) == case.id,
                col(Allocation.provider_id) + 0 == provider.id,
            )
        ).scalars()
        return any(a.status == AllocationStatus.accepted for a in rows)


@dataclass(kw_only=True)
class Step:
    """One event being applied: what a handler reads and changes."""

    session: Session
    case: Case
    family: Person | None
    provider: Provider | None
    data: dict[str, Any]
    clocks: Clocks
    now: dt.datetime
    today: dt.date
    settings: Settings
    actor: Actor
    from_state: str
    # Agreed actions recorded by this step (reg 42), for the letters it causes.
    items: list[AgreementItem] = field(default_factory=list)
    # Documents this step made, by the recipient whose emails carry them.
    attachments: dict[str, int] = field(default_factory=dict)
    # What the person should check, though the law allows it: shown, never refused.
    warnings: list[str] = field(default_factory=list)
    # For a step that issues a certificate (read with the case): the actor's name and
    # the year's last certificate number; a PDF rendered before this transaction
    # (:class:`casework.cases.certificates.Prepared`); whether a PDF may be rendered
    # inside it (before its first write); a preview stores no document at all.
    actor_name: str | None = None
    last_certificate: str | None = None
    prepared: Any = None
    render_in_transaction: bool = True
    preview: bool = False
    # The case's audit chain end, read with the case (SQLite; None: read when sealing).
    chain_end: str | None = None
    # Whether the provider had accepted the case, read with it (None: not read).
    provider_accepted: bool | None = None

    @classmethod
    def begin(
        cls,
        session: Session,
        case: Case,
        *,
        now: dt.datetime,
        settings: Settings,
        actor: Actor,
        family: Person | None = None,
        provider: Provider | None = None,
        data: dict[str, Any] | None = None,
        clocks: Clocks | None = None,
    ) -> Step:
        """A change to ``case`` recorded ``now``: its clocks loaded, its state noted."""
        return cls(
            session=session,
            case=case,
            family=family,
            provider=provider,
            data=data if data is not None else {},
            clocks=clocks if clocks is not None else Clocks(session, case, now),
            now=now,
            today=dl.local_date(now),
            settings=settings,
            actor=actor,
            from_state=case.state,
        )
