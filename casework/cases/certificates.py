"""Mediation certificates as documents: made when one is issued, reissued to correct, verified.

Issuing a certificate (``issue_certificate`` in :mod:`casework.cases.effects`) calls
:func:`certificate_for_step` inside the event's transaction: the PDF, its number and
its verification code are stored with the event or not at all. The PDF itself is laid
out while no write lock is held (before the transaction on SQLite, before its first
write on PostgreSQL), so a certificate never keeps other writers waiting.
The number (``MC-2026-000123``) is what the Tribunal and the LA quote; the code, printed
beside it, proves the copy they hold is one casework issued (:func:`verify_certificate`).
A correction (:func:`reissue_certificate`) keeps the number, prints a new code and
marks the earlier version superseded, so the verify page can say an old copy is
out of date."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from casework import deadlines as dl
from casework.cases.access import check_actor_may_see
from casework.cases.context import Actor
from casework.cases.documents import current_document, store_document
from casework.cases.errors import Conflict, NotFound, NotPermitted, ValidationFailed
from casework.cases.unit import (
    Clocks,
    Step,
    case_transaction,
    load_case,
    record_change,
    require_aware,
    runs_again_as_writer,
)
from casework.cases.words import DECISION_TYPE_WORDS, actor_words
from casework.config import Settings
from casework.law import load_law
from casework.models import Case, Document, Person, Provider, User
from casework.pdf import PDF, render_pdf

CERTIFICATE_PREFIX = "MC"
REISSUE_EVENT = "reissue_certificate"
TEMPLATE = "certificate.html"
# No 0/O, 1/I/L, 5/S or 2/Z: a code read over the phone or typed from paper
# cannot be mistaken for another. 28 symbols ** 8 = 3.8e11 codes per certificate.
CODE_ALPHABET = "ABCDEFGHJKMNPQRTUVWXY3467892"
CODE_LENGTH = 8


@dataclass(frozen=True, slots=True)
class Situation:
    """One of the three situations a certificate certifies, in words, with its law."""

    kind: str  # the document kind
    title: str
    statement: str
    clock: str  # the law.toml clock whose citation it carries
    issuer: str  # who issues it: "adviser" or "mediator"


SITUATIONS: dict[str, Situation] = {
    "declined": Situation(
        kind="certificate_declined",
        title="The family decided not to pursue mediation",
        statement=(
            "The mediation adviser gave information about mediation and the family"
            " decided not to go to mediation (or did not pursue it)."
        ),
        clock="certificate_after_decline",
        issuer="adviser",
    ),
    "not_arranged": Situation(
        kind="certificate_not_arranged",
        title="Mediation could not be arranged within 30 days",
        statement=(
            "The family asked for mediation, but the meeting could not be arranged within 30 days."
        ),
        clock="certificate_not_arranged",
        issuer="adviser",
    ),
    "mediation_held": Situation(
        kind="certificate_mediation_held",
        title="Mediation took place",
        statement="The family took part in mediation with the local authority.",
        clock="certificate_after_meeting",
        issuer="mediator",
    ),
}
KIND_TO_TYPE: dict[str, str] = {s.kind: t for t, s in SITUATIONS.items()}


def new_verification_code() -> str:
    """A random code printed on the certificate: ``K7QW-3MXD`` is shown, ``K7QW3MXD`` stored."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def show_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def normalise_code(typed: str) -> str:
    """What a person typed, as stored: no spaces or dashes, capitals."""
    return "".join(ch for ch in typed.upper() if ch.isalnum())


def normalise_number(typed: str) -> str:
    return "".join(typed.split()).upper()


def number_prefix(now: dt.datetime) -> str:
    """``MC-2026-``: the numbers of the year (London) a certificate is issued in."""
    return f"{CERTIFICATE_PREFIX}-{dl.local_date(now).year}-"


def next_number(prefix: str, last: str | None) -> str:
    """MC-2026-000123: one more than the year's highest number issued (read with the case).

    Why no counter row: bumping one inside the transaction serialised every certificate
    of the service behind one row lock (held, before, while the PDF was laid out), and
    bumping it in a transaction of its own would be a second commit per step. The
    numbers are the documents' own: ``uq_documents_certificate`` (number, version)
    refuses a second version 1 of a number, so two certificates issued at the same
    moment cannot share one; the one that loses is made again with the next number
    (:func:`casework.cases.advance.record_step`). Numbers stay gapless: a step that
    fails takes none.
    """
    count = 0
    if last:
        try:
            count = int(last.rsplit("-", 1)[1])
        except (IndexError, ValueError):  # not ours: start after nothing rather than fail
            count = 0
    return f"{prefix}{count + 1:06d}"


def issuer_words(
    name: str | None,
    actor: Actor,
    situation: Situation,
    provider: Provider | None,
    settings: Settings,
) -> str:
    """'Kim Lee, mediator, Solution Talk' or 'Alice Adviser, mediation adviser, IAS ...'."""
    if actor.is_provider:
        role = f"mediator, {provider.name}" if provider is not None else "mediator"
    else:
        role = f"mediation adviser, {settings.service.name}"
    return f"{name}, {role}" if name else role[0].upper() + role[1:]


def actor_name(session: Session, actor: Actor) -> str | None:
    """The acting person's name, as their user account gives it (None: no account)."""
    who = actor_words(actor.id)
    return session.execute(
        select(col(User.name)).where(col(User.email) == who).limit(1)
    ).scalar_one_or_none()


def _local_authority(settings: Settings) -> str:
    service = settings.service
    return service.local_authority or f"The local authority for {service.area}"


def certificate_context(
    *,
    case: Case,
    family: Person | None,
    certificate_type: str,
    number: str,
    code: str,
    version: int,
    issued_on: dt.date,
    issued_by: str,
    settings: Settings,
    second: bool,
    correction: str = "",
) -> dict[str, Any]:
    """Everything printed on a certificate, in words (no codes, no ISO dates)."""
    situation = SITUATIONS[certificate_type]
    law = load_law().clock(situation.clock)
    decision = case.decision_date
    if decision is None:  # effects require it before a certificate; say so plainly
        raise ValidationFailed("a certificate needs the date of the LA's decision letter")
    first_certificate = case.certificate_on or issued_on
    appeal = dl.appeal_clock(decision, first_certificate)
    return {
        "title": f"Mediation certificate {number}",
        "number": number,
        "code": show_code(code),
        "version": version,
        "correction": correction,
        "issued_to": family.name
        if family is not None and family.name
        else "The parent or young person",
        "child": case.child_name or "Not recorded",
        "local_authority": _local_authority(settings),
        "decision": DECISION_TYPE_WORDS.get(case.decision_type or "", "Not recorded"),
        "decision_date": dl.fmt(decision),
        "situation_title": situation.title,
        "situation_statement": situation.statement,
        "regulation": law.citation,
        "regulation_rule": law.rule,
        "issued_on": dl.fmt(issued_on),
        "issued_by": issued_by,
        "appeal_due": dl.fmt(appeal.due) + ", 5pm",
        "appeal_working": appeal.explanation,
        "appeal_citation": appeal.citation,
        "second": second,
        "tribunal_url": settings.service.tribunal_guidance_url,
        "verify_url": f"{settings.public_url.rstrip('/')}/verify",
        "service_name": settings.service.name,
        "helpline": settings.service.helpline,
    }


def file_name_for(number: str, version: int) -> str:
    """certificate-MC-2026-000123-v1.pdf: no name, no reference, nothing personal."""
    return f"certificate-{number}-v{version}.pdf"


@dataclass(frozen=True, slots=True)
class Prepared:
    """A certificate's PDF rendered outside the write transaction, with what it shows.

    The write transaction uses the PDF only if the certificate it works out, from the
    case as that transaction reads it, shows exactly ``context`` (same number, same
    code, same names and dates): a PDF is never stored beside facts it does not show.
    """

    context: dict[str, Any]
    code: str
    content: bytes


class RenderFirst(Exception):
    """Raised inside a step's transaction before any write: render this PDF, then run
    the step again (:func:`casework.cases.advance.record_step` does both)."""

    def __init__(self, context: dict[str, Any], code: str) -> None:
        super().__init__("the certificate is rendered before its transaction")
        self.context = context
        self.code = code

    def render(self) -> Prepared:
        return Prepared(self.context, self.code, render_pdf(TEMPLATE, self.context))


def certificate_for_step(
    step: Step, *, certificate_type: str, issued_on: dt.date, second: bool
) -> Document | None:
    """The newly issued certificate (version 1) of ``step``, stored in its transaction.

    The PDF is never laid out while the transaction holds a write lock (it takes
    ~150 ms; every other writer would wait for it). Where it is laid out:

    * a PDF prepared before the transaction (``step.prepared``) showing exactly what
      this transaction works out is stored as it is;
    * on PostgreSQL (``step.render_in_transaction``) it is rendered here: nothing has
      been written yet, and a SELECT takes no row lock, so no writer waits. Writing
      starts after it; the version-checked UPDATE refuses the step if the case
      changed meanwhile (a Conflict, nothing written);
    * on SQLite a transaction's snapshot is the whole database's, and any write
      committed by anyone while the PDF was laid out would make this one's first
      write fail. So :class:`RenderFirst` ends the (read-only) transaction, the PDF is
      rendered with no transaction open, and the step runs again: it re-reads the case
      and uses the PDF only if it still shows what the case says (same number, same
      facts), else renders again.

    The number is one more than the year's highest (:func:`next_number`), the code is
    new (kept across a re-run, so a prepared PDF still matches), and the step's audit
    row and the family's notices name the document, in the same commit. A preview
    (``step.preview``) stores nothing and returns None.
    """
    situation = SITUATIONS[certificate_type]
    number = next_number(number_prefix(step.now), step.last_certificate)
    prepared: Prepared | None = step.prepared
    code = prepared.code if prepared is not None else new_verification_code()
    context = certificate_context(
        case=step.case,
        family=step.family,
        certificate_type=certificate_type,
        number=number,
        code=code,
        version=1,
        issued_on=issued_on,
        issued_by=issuer_words(
            step.actor_name, step.actor, situation, step.provider, step.settings
        ),
        settings=step.settings,
        second=second,
    )
    if step.preview:
        return None
    if prepared is not None and prepared.context == context:
        content = prepared.content
    elif step.render_in_transaction:
        content = render_pdf(TEMPLATE, context)
    else:
        raise RenderFirst(context, code)
    return store_document(
        step.session,
        step.case,
        situation.kind,
        content,
        PDF,
        file_name_for(number, 1),
        step.actor,
        now=step.now,
        settings=step.settings,
        series=number,
        certificate_number=number,
        verification_code=code,
        issued_on=issued_on,
        new_series=True,
    )


def reissuable_kinds(actor: Actor) -> frozenset[str]:
    """The certificates this person may correct (what the pages offer a form for)."""
    if actor.is_provider:
        return frozenset({SITUATIONS["mediation_held"].kind})
    if actor.role in ("adviser", "manager", "admin"):
        return frozenset(s.kind for s in SITUATIONS.values())
    return frozenset()


def _may_reissue(actor: Actor, kind: str) -> None:
    """The one who issues a kind of certificate corrects it: see effects' permission rule."""
    if kind in reissuable_kinds(actor):
        return
    if actor.is_provider:
        raise NotPermitted(
            "Cannot reissue this certificate: it is the IAS adviser's; a mediator reissues"
            " only the certificate after a meeting."
        )
    raise NotPermitted("Cannot reissue a certificate: that is the IAS adviser's step.")


@runs_again_as_writer
def reissue_certificate(
    session: Session,
    reference: str,
    certificate_number: str,
    *,
    reason: str,
    now: dt.datetime,
    actor: Actor,
    settings: Settings,
) -> Document:
    """A correction: the certificate re-made from the case as it is now, as a new version.

    Correct the case first (the child's name, the decision date); then reissue. The
    number stays, the code is new, the earlier version is marked superseded, and the
    family is sent the new one.

    The PDF is laid out with no transaction open, as a new certificate's is
    (:func:`certificate_for_step`): a first transaction reads the case and works out
    what the new version shows, and ends without writing; the PDF is rendered; a
    second transaction reads everything again and stores the PDF, the superseding
    and the audit event together only if the new version still shows exactly that
    (else it renders again, at most three times, then says the case kept changing).
    """
    now = require_aware(now)
    reason = " ".join(reason.split())
    if not reason:
        raise ValidationFailed("Say what was corrected (it is kept with the certificate)", "reason")
    if len(reason) > 500:
        raise ValidationFailed("Keep the reason to 500 characters or fewer", "reason")
    number = normalise_number(certificate_number)
    code = new_verification_code()
    prepared: Prepared | None = None
    for _attempt in range(3):
        with case_transaction(session, reference):
            case, family, provider = load_case(session, reference)
            check_actor_may_see(case, actor)
            previous = session.execute(
                select(Document).where(
                    col(Document.case_id) == case.id,
                    col(Document.certificate_number) == number,
                    col(Document.superseded_by).is_(None),
                )
            ).scalar_one_or_none()
            if previous is None:
                raise NotFound(
                    f"{case.reference} has no certificate numbered {number}; check the number"
                    " on the case's documents list."
                )
            _may_reissue(actor, previous.kind)
            certificate_type = KIND_TO_TYPE[previous.kind]
            second = previous.kind == SITUATIONS["mediation_held"].kind and (
                case.second_certificate_on is not None
            )
            issued_on = previous.issued_on or dl.local_date(previous.created_at)
            version = previous.version + 1
            with session.no_autoflush:
                context = certificate_context(
                    case=case,
                    family=family,
                    certificate_type=certificate_type,
                    number=number,
                    code=code,
                    version=version,
                    issued_on=issued_on,
                    issued_by=issuer_words(
                        actor_name(session, actor),
                        actor,
                        SITUATIONS[certificate_type],
                        provider,
                        settings,
                    ),
                    settings=settings,
                    second=second,
                    correction=(
                        f"Corrected on {dl.fmt(dl.local_date(now))}. This version replaces"
                        f" version {previous.version}: {reason}"
                    ),
                )
                if prepared is None or prepared.context != context:
                    # Nothing written yet: end the transaction, then lay the PDF out.
                    session.rollback()
                    prepared = RenderFirst(context, code).render()
                    continue
                document = store_document(
                    session,
                    case,
                    previous.kind,
                    prepared.content,
                    PDF,
                    file_name_for(number, version),
                    actor,
                    now=now,
                    settings=settings,
                    series=number,
                    certificate_number=number,
                    verification_code=code,
                    issued_on=issued_on,
                )
                case.updated_at = now
                record_change(
                    session,
                    case,
                    actor=actor,
                    event=REISSUE_EVENT,
                    at=now,
                    from_state=case.state,
                    settings=settings,
                    data={
                        "certificate_number": number,
                        "version": version,
                        "document_id": document.id,
                        "reason": reason,
                    },
                    family=family,
                    provider=provider,
                    clocks=Clocks(session, case, now),
                    attachments={"family": document.id},  # type: ignore[dict-item]
                )
            session.commit()
            return document
    raise Conflict(
        f"{reference.strip().upper()} kept changing while its corrected certificate was"
        " being made; reload it and try again"
    )


@dataclass(frozen=True, slots=True)
class Verification:
    """What the public verify page may say: genuine or not, type, date, current or not."""

    genuine: bool
    situation: str = ""
    issued_on: str = ""
    current: bool = False
    version: int = 0


def verify_certificate(session: Session, number: str, code: str) -> Verification:
    """Is this number and code a certificate casework issued? Nothing else is revealed.

    A wrong number and a wrong code read the same (not genuine), so the page cannot
    be used to find out which numbers exist.
    """
    wanted_number = normalise_number(number)
    wanted_code = normalise_code(code)
    if not wanted_number or not wanted_code:
        return Verification(genuine=False)
    rows = session.execute(
        select(
            col(Document.kind),
            col(Document.issued_on),
            col(Document.superseded_by),
            col(Document.version),
            col(Document.verification_code),
        ).where(col(Document.certificate_number) == wanted_number)
    ).all()
    for kind, issued_on, superseded_by, version, stored in rows:
        if stored and secrets.compare_digest(stored, wanted_code):
            return Verification(
                genuine=True,
                situation=SITUATIONS[KIND_TO_TYPE[kind]].title,
                issued_on=dl.fmt(issued_on) if issued_on else "",
                current=superseded_by is None,
                version=version,
            )
    return Verification(genuine=False)


def certificate_document(session: Session, case: Case, number: str) -> Document | None:
    """The current version of a case's certificate ``number`` (no bytes needed)."""
    for kind in SITUATIONS.values():
        found = current_document(session, case, kind.kind, number)
        if found is not None:
            return found
    return None


class GuessLimiter:
    """At most ``limit`` checks per client address per ``window``: guessing codes is slow.

    A simple per-process counter (each web worker keeps its own, and a restart clears
    it): with 28**8 codes per number, 20 tries per 10 minutes per address leaves a
    guesser nowhere near a match, and the Tribunal checking a few certificates never
    meets it. A deployment behind a proxy must pass the real client address through.
    """

    def __init__(self, limit: int = 20, window: dt.timedelta = dt.timedelta(minutes=10)) -> None:
        self.limit = limit
        self.window = window
        self._tries: dict[str, list[dt.datetime]] = {}

    def allow(self, client: str, now: dt.datetime) -> bool:
        """Count one check by ``client`` at ``now``; False once it is over the limit."""
        since = now - self.window
        recent = [t for t in self._tries.get(client, []) if t > since]
        if len(recent) >= self.limit:
            self._tries[client] = recent
            return False
        recent.append(now)
        self._tries[client] = recent
        if len(self._tries) > 10_000:  # forget idle addresses so memory stays small
            self._tries = {k: v for k, v in self._tries.items() if v and v[-1] > since}
        return True

    def wait_minutes(self, client: str, now: dt.datetime) -> int:
        tries = self._tries.get(client) or [now]
        left = tries[0] + self.window - now
        return max(1, -(-int(left.total_seconds()) // 60))


class TooManyChecks(ValidationFailed):
    """The limit of checks from one address was reached; try again later."""


def check_certificate(
    session: Session,
    number: str,
    code: str,
    *,
    client: str,
    now: dt.datetime,
    limiter: GuessLimiter,
) -> Verification:
    """The public check (``/verify``): both fields needed, guesses limited per address."""
    errors = []
    if not normalise_number(number):
        errors.append(("Enter the certificate number, for example MC-2026-000123", "number"))
    if not normalise_code(code):
        errors.append(("Enter the verification code, for example K7QW-3MXD", "code"))
    if errors:
        message, field = errors[0]
        raise ValidationFailed(message, field)
    if not limiter.allow(client, now):
        raise TooManyChecks(
            "Too many certificates were checked from this connection. Try again in"
            f" {limiter.wait_minutes(client, now)} minutes.",
            "number",
        )
    return verify_certificate(session, number, code)
