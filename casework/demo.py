"""Demo users and demo cases for a newcomer's first run (``casework serve --demo``).

Idempotent: users are created only when missing, and their random passwords are
returned (to be printed) only at that moment, never stored or shown again. The
dozen demo cases are opened and moved through the real use cases, back-dated
from ``now``, so their deadlines, notices and audit trails are the real thing: some
overdue, some due soon, some on track. They are loaded once; a second run finds
the demo actor in the audit trail and adds nothing.

The families are fictional; phone numbers are in Ofcom's drama range (0161 496 0xxx)
and email addresses are at example.org, so nothing can reach a real person.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session, col

from casework import auth, cases
from casework import deadlines as dl
from casework.config import Settings
from casework.models import CaseEvent, Provider, Role, User

log = logging.getLogger(__name__)

DEMO_DOMAIN = "demo.casework"
# The loader's own name in the audit trail: honest about where the cases came from,
# and how a second run tells that they are already there.
DEMO_ACTOR = cases.Actor(id="demo:loader", role="adviser", channel="cli")


@dataclass(frozen=True)
class DemoUser:
    email: str
    role: str
    provider: str | None = None
    name: str = ""


def demo_users(settings: Settings) -> list[DemoUser]:
    """Adviser, manager, admin, and one member of staff per configured provider."""
    people = [
        DemoUser(f"adviser@{DEMO_DOMAIN}", Role.adviser, name="Demo Adviser"),
        DemoUser(f"manager@{DEMO_DOMAIN}", Role.manager, name="Demo Manager"),
        DemoUser(f"admin@{DEMO_DOMAIN}", Role.admin, name="Demo Admin"),
    ]
    for p in settings.providers:
        people.append(
            DemoUser(f"{p.code}@{DEMO_DOMAIN}", Role.provider, provider=p.code, name=p.name)
        )
    return people


def _ensure_users(session: Session, settings: Settings, now: dt.datetime) -> list[str]:
    lines: list[str] = []
    for person in demo_users(settings):
        exists = session.execute(
            select(col(User.id)).where(col(User.email) == person.email)
        ).scalar_one_or_none()
        if exists is not None:
            continue
        password = secrets.token_urlsafe(12)
        auth.create_user(
            session,
            email=person.email,
            role=person.role,
            now=now,
            password=password,
            name=person.name,
            provider=person.provider,
        )
        label = f"{person.role} ({person.name})" if person.provider else person.role
        lines.append(f"demo {label}: {person.email} / {password}")
    return lines


def _already_loaded(session: Session) -> bool:
    return (
        session.execute(
            select(col(CaseEvent.id)).where(col(CaseEvent.actor) == DEMO_ACTOR.id).limit(1)
        ).first()
        is not None
    )


class _Story:
    """One demo case told through the use cases, each step back-dated from ``now``."""

    def __init__(self, session: Session, settings: Settings, now: dt.datetime) -> None:
        self.session = session
        self.settings = settings
        self.now = now
        self.reference = ""
        self._counter = 0

    def ago(self, days: float) -> dt.datetime:
        return self.now - dt.timedelta(days=days)

    def day(self, days: float) -> dt.date:
        return dl.local_date(self.ago(days))

    def open(self, days_ago: float, **fields: object) -> _Story:
        self._counter += 1
        intake = cases.Intake(
            kind=str(fields.pop("kind", "mediation")),
            name=str(fields.pop("name")),
            phone=str(fields.pop("phone")),
            channel=str(fields.pop("channel", "helpline")),
            email=str(fields.pop("email", "")),
            preferred_channels=str(fields.pop("preferred_channels", "email")),
            **fields,  # type: ignore[arg-type]
        )
        case = cases.open_case(
            self.session, intake, now=self.ago(days_ago), actor=DEMO_ACTOR, settings=self.settings
        )
        self.reference = case.reference
        return self

    def event(self, days_ago: float, event: str, **data: object) -> _Story:
        cases.advance(
            self.session,
            self.reference,
            event,
            now=self.ago(days_ago),
            actor=DEMO_ACTOR,
            settings=self.settings,
            data=data,
        )
        return self

    def allocate(self, days_ago: float, provider: str) -> _Story:
        cases.allocate(
            self.session,
            self.reference,
            provider,
            now=self.ago(days_ago),
            actor=DEMO_ACTOR,
            settings=self.settings,
            note="Family happy to meet on weekday mornings.",
            override_reason="demo data: spread across the providers",
        )
        return self

    def accept(self, days_ago: float) -> _Story:
        case = cases.get_case(self.session, self.reference)
        provider = self.session.get(Provider, case.provider_id)
        assert provider is not None
        actor = cases.Actor(
            id=f"user:{provider.code}@{DEMO_DOMAIN}",
            role="provider",
            channel="portal",
            provider_id=provider.id,
        )
        cases.respond_to_allocation(
            self.session,
            self.reference,
            accept=True,
            now=self.ago(days_ago),
            actor=actor,
            settings=self.settings,
        )
        return self


def _phone(n: int) -> str:
    return f"0161 496 {n:04d}"


def _stories(now: dt.datetime) -> list[tuple[str, Callable[[_Story], object]]]:
    """About a dozen cases across both flows and every common state."""

    def decision(story: _Story, days: int) -> dt.date:
        return story.day(days)

    return [
        (
            "new mediation request",
            lambda s: s.open(
                1,
                name="Sam Taylor",
                phone=_phone(101),
                email="sam.taylor@example.org",
                decision_date=decision(s, 12),
                decision_type="refuse_assessment",
                summary="LA refused an EHC needs assessment; family want to appeal.",
            ),
        ),
        (
            "window closing",
            lambda s: s.open(
                3,
                name="Priya Shah",
                phone=_phone(102),
                email="priya.shah@example.org",
                decision_date=decision(s, 58),
                decision_type="plan_contents",
                summary="Disagrees with section F of the final plan (speech and language).",
            ).event(2, "advise", note="Explained mediation and the appeal window."),
        ),
        (
            "window passed",
            lambda s: s.open(
                8,
                name="Jordan Evans",
                phone=_phone(103),
                email="jordan.evans@example.org",
                decision_date=decision(s, 64),
                decision_type="refuse_plan",
            ).event(7, "advise", note="Family still deciding."),
        ),
        (
            "offered to a provider",
            lambda s: (
                s.open(
                    4,
                    name="Alex Morgan",
                    phone=_phone(104),
                    email="alex.morgan@example.org",
                    decision_date=decision(s, 20),
                    decision_type="cease_plan",
                    summary="LA intends to stop maintaining the plan at 19.",
                )
                .event(3, "advise", note="Family want mediation.")
                .allocate(1, "solution-talk")
            ),
        ),
        (
            "mediating, on track",
            lambda s: (
                s.open(
                    14,
                    name="Chris Walker",
                    phone=_phone(105),
                    email="chris.walker@example.org",
                    decision_date=decision(s, 25),
                    decision_type="refuse_amend",
                )
                .event(13, "advise")
                .allocate(12, "solution-talk")
                .accept(11)
                .event(10, "choose_mediation", la_told_on=s.day(10))
            ),
        ),
        (
            "meeting due soon",
            lambda s: (
                s.open(
                    32,
                    name="Robin Hughes",
                    phone=_phone(106),
                    email="robin.hughes@example.org",
                    decision_date=decision(s, 40),
                    decision_type="plan_contents",
                )
                .event(31, "advise")
                .allocate(30, "collis")
                .accept(29)
                .event(28, "choose_mediation", la_told_on=s.day(28))
                .event(5, "schedule_meeting", meeting_on=s.day(-1), meeting_time="10:00")
            ),
        ),
        (
            "meeting held, certificate due",
            lambda s: (
                s.open(
                    30,
                    name="Morgan Price",
                    phone=_phone(107),
                    email="morgan.price@example.org",
                    decision_date=decision(s, 35),
                    decision_type="plan_contents",
                )
                .event(29, "advise")
                .allocate(28, "kids")
                .accept(27)
                .event(26, "choose_mediation", la_told_on=s.day(26))
                .event(10, "schedule_meeting", meeting_on=s.day(1), meeting_time="14:00")
                .event(
                    1,
                    "record_meeting",
                    meeting_held_on=s.day(1),
                    outcome="agreement",
                    agreement="LA to fund 10 hours of speech and language therapy a term.",
                )
            ),
        ),
        (
            "declined, certificate late",
            lambda s: (
                s.open(
                    12,
                    name="Jamie Clarke",
                    phone=_phone(108),
                    email="jamie.clarke@example.org",
                    decision_date=decision(s, 30),
                    decision_type="refuse_assessment",
                )
                .event(11, "advise")
                .event(8, "decline", declined_on=s.day(8))
            ),
        ),
        (
            "certificate issued",
            lambda s: (
                s.open(
                    20,
                    name="Taylor Bennett",
                    phone=_phone(109),
                    email="taylor.bennett@example.org",
                    decision_date=decision(s, 45),
                    decision_type="refuse_plan",
                )
                .event(19, "advise")
                .event(6, "decline", declined_on=s.day(6))
                .event(5, "issue_certificate", certificate_on=s.day(5))
            ),
        ),
        (
            "placement only: exempt",
            lambda s: s.open(
                6,
                name="Casey Wright",
                phone=_phone(110),
                email="casey.wright@example.org",
                decision_date=decision(s, 15),
                decision_type="plan_contents",
                placement_only=True,
                summary="Appeal is only about the school named in section I.",
            ).event(5, "mark_exempt"),
        ),
        (
            "disagreement resolution, new",
            lambda s: s.open(
                2,
                kind="disagreement",
                name="Drew Patel",
                phone=_phone(111),
                email="drew.patel@example.org",
                channel="email",
                summary="School not delivering the SEN support agreed at the last review.",
            ),
        ),
        (
            "disagreement resolution, allocated",
            lambda s: (
                s.open(
                    15,
                    kind="disagreement",
                    name="Frankie Lewis",
                    phone=_phone(112),
                    email="frankie.lewis@example.org",
                    summary="Disagreement with the college about transport support.",
                )
                .event(12, "advise")
                .allocate(9, "link")
                .accept(8)
            ),
        ),
        (
            "health care in issue",
            lambda s: (
                s.open(
                    9,
                    name="Riley Cooper",
                    phone=_phone(113),
                    email="riley.cooper@example.org",
                    decision_date=decision(s, 18),
                    decision_type="plan_contents",
                    health_care=True,
                    summary="Therapy provision in section G (health) is in dispute.",
                )
                .event(8, "advise")
                .allocate(7, "together-trust")
                .accept(6)
                .event(5, "choose_mediation", la_told_on=s.day(5), health_care="yes")
            ),
        ),
    ]


def load_demo(session: Session, settings: Settings, now: dt.datetime) -> list[str]:
    """Create what is missing; return lines to print (new credentials, what was loaded)."""
    return ensure_demo_users(session, settings, now) + load_demo_cases(session, settings, now)


def ensure_demo_users(session: Session, settings: Settings, now: dt.datetime) -> list[str]:
    """The demo accounts that were missing, as lines with their one-time passwords."""
    cases.sync_providers(session, settings)
    lines = _ensure_users(session, settings, now.astimezone(dt.UTC))
    if lines:
        lines.append("(these passwords are shown once: note them now)")
        lines.append(
            "(the manager and the admin set up two-factor sign-in with an authenticator app"
            " at their first sign-in)"
        )
    return lines


def load_demo_cases(session: Session, settings: Settings, now: dt.datetime) -> list[str]:
    """The demo cases, once; lines saying what was loaded or skipped."""
    now = now.astimezone(dt.UTC)
    cases.sync_providers(session, settings)
    lines: list[str] = []
    if _already_loaded(session):
        return lines
    loaded: list[str] = []
    for title, tell in _stories(now):
        story = _Story(session, settings, now)
        try:
            tell(story)
        except cases.CaseworkError as exc:
            session.rollback()
            log.warning("demo case %r skipped: %s", title, exc)
            lines.append(f"demo case '{title}' skipped: {exc}")
            continue
        loaded.append(f"{story.reference} ({title})")
    if loaded:
        lines.append(f"demo data: {len(loaded)} cases loaded: " + ", ".join(loaded))
    return lines
