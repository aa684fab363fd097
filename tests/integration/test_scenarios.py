"""Whole lives of cases, with the clock pinned at every edge: who hears what, and when.

Each scenario calls the use cases with ``now`` pinned and runs
``scheduler.run_once(engine, settings, now)`` (one sweep, one dispatch: what
`casework tick --at` runs) at every clock edge in between: every day at 08:59 and
09:01 (reminders fire at 09:00 London, so no reminder can slip by unseen or go
stale between ticks), the minute either side of every open clock's due time (the
end of a London day, or the appeal's 5pm) and of every moment a notice is expected.
At every tick it asserts EXACTLY which notices were sent (template, recipient,
channel, address) and that nothing else was sent, skipped or failed.

Expected moments were worked out by hand from ``domain.md`` and
``config/defaults.toml``; the reasoning is beside each one. The LA's decision was
sent on Mon 2 Nov 2026 and the family rang on Mon 9 Nov. 2026/27 bank holidays:
Fri 25 Dec, Mon 28 Dec (Boxing Day substitute), Fri 1 Jan. November to January is
GMT, so London time equals UTC throughout.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from casework import cases, scheduler
from casework.config import Settings, load_settings
from casework.db import session_scope
from casework.deadlines import local_date
from casework.models import CaseEvent, Deadline, Notice
from tests.conftest import ADVISER, at
from tests.factories import allocate_to, intake
from tests.fakes.sendgrid_server import SendGridFake
from tests.fakes.twilio_server import TwilioFake

D = dt.date
MINUTE = dt.timedelta(minutes=1)
FAMILY_PHONE = "+447911234567"
FAMILY_EMAIL = "jo.family@example.org"
CHILD = "Kai Whitfield"
PROVIDER_EMAILS = {
    "link": "referrals@link-mediation.example.org",
    "kids": "referrals@kids.example.org",
}

Sent = tuple[str, str, str]  # (template, recipient role, channel)

SMS_AND_EMAIL = ("sms", "email")


def family(template: str, channels: tuple[str, ...] = SMS_AND_EMAIL) -> list[Sent]:
    return [(template, "family", c) for c in channels]


def provider(template: str) -> list[Sent]:
    return [(template, "provider", "email")]


def adviser(template: str) -> list[Sent]:
    return [(template, "adviser", "email")]


def manager(template: str) -> list[Sent]:
    return [(template, "manager", "email")]


@pytest.fixture(autouse=True)
def _fresh_channel_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # scheduler caches SDK clients by id(settings); ids are reused once a test's
    # settings are freed, so a later test could get an earlier test's channels.
    monkeypatch.setattr(scheduler, "_channel_cache", {})


class Life:
    """Walks one case through time, ticking at every edge and checking every notice."""

    def __init__(self, engine: Engine, settings: Settings, start: dt.datetime) -> None:
        self.engine = engine
        self.settings = settings
        self.now = start - MINUTE
        self.reference = ""
        self.provider_email = PROVIDER_EMAILS["link"]
        self.schedule: dict[dt.datetime, list[Sent]] = {}
        self.seen: set[int] = set()
        self.sent: list[tuple[dt.datetime, Notice]] = []
        self.ticks = 0

    # -- expectations ------------------------------------------------------------------

    def expect(self, day: str, time: str, *sent: list[Sent]) -> None:
        """Notices the scheduler must send at this London moment (and not a minute before)."""
        moment = at(day, time)
        assert moment not in self.schedule, moment
        self.schedule[moment] = [s for group in sent for s in group]

    # -- moving time -------------------------------------------------------------------

    def tick(self, now: dt.datetime, expected: list[Sent]) -> None:
        assert now > self.now, (now, self.now)
        self.now = now
        result = scheduler.run_once(self.engine, self.settings, now)
        self.ticks += 1
        assert result["dispatch"]["failed"] == 0, result
        new = self._new_notices()
        got = sorted((n.template, n.recipient_role, n.channel, n.status) for n in new)
        want = sorted((*s, "sent") for s in expected)
        when = f"{now.astimezone(dt.UTC):%a %d %b %Y %H:%M} UTC"
        assert got == want, f"at {when} ({self.reference}): sent {got}, expected {want}"
        for n in new:
            assert n.sent_at == now, (n.template, n.sent_at, now)
            assert n.to_address == self._address(n.recipient_role, n.channel), n.template
            if n.channel == "sms":
                assert CHILD.split()[0] not in n.body and "Jo" not in n.body.split()
            self.sent.append((now, n))

    def run_until(self, until: dt.datetime) -> None:
        """Tick at every edge after ``self.now`` up to and including ``until``."""
        edges: set[dt.datetime] = set()
        day = local_date(self.now)
        while day <= local_date(until):
            for hm in ("08:59", "09:01"):
                edges.add(at(day.isoformat(), hm))
            day += dt.timedelta(days=1)
        for moment in self.schedule:
            edges |= {moment - MINUTE, moment + MINUTE}
        for due_at in self._open_due_times():
            edges |= {due_at - MINUTE, due_at + MINUTE}
        for edge in sorted(e for e in edges if self.now < e <= until):
            self.tick(edge, self.schedule.pop(edge - MINUTE, []))
        overdue = sorted(m for m in self.schedule if m + MINUTE <= until)
        assert not overdue, f"expected moments never ticked: {overdue}"

    def do(
        self, day: str, time: str, action: Callable[[Session, dt.datetime], Any], *sent: list[Sent]
    ) -> None:
        """Everything up to this moment happens first; then the action; then a tick."""
        when = at(day, time)
        self.run_until(when - dt.timedelta(seconds=1))
        with session_scope(self.engine) as s:
            action(s, when)
        self.tick(when, [x for group in sent for x in group])

    def finish(self, day: str) -> None:
        self.run_until(at(day, "23:59"))
        with session_scope(self.engine) as s:
            left = s.execute(
                select(Notice.template, Notice.status).where(
                    col(Notice.status).in_(["queued", "sending"])
                )
            ).all()
        assert left == [], f"notices never sent: {left}"

    # -- reading the database -------------------------------------------------------------

    def _new_notices(self) -> list[Notice]:
        with session_scope(self.engine) as s:
            rows = [
                n
                for n in s.execute(
                    select(Notice).where(col(Notice.status).not_in(["queued", "sending"]))
                ).scalars()
                if n.id not in self.seen
            ]
        self.seen |= {n.id for n in rows}  # type: ignore[misc]
        return rows

    def _open_due_times(self) -> list[dt.datetime]:
        with session_scope(self.engine) as s:
            return list(
                s.execute(select(Deadline.due_at).where(col(Deadline.status) == "open")).scalars()
            )

    def _address(self, role: str, channel: str) -> str:
        if role == "family":
            return FAMILY_PHONE if channel == "sms" else FAMILY_EMAIL
        if role == "provider":
            return self.provider_email
        if role == "adviser":
            return self.settings.team.adviser_email
        return self.settings.team.manager_email

    def clocks(self) -> list[tuple[str, str]]:
        with session_scope(self.engine) as s:
            case = cases.get_case(s, self.reference)
            return [(d.kind, d.status) for d in cases.case_deadlines(s, case)]

    def missed_events(self) -> list[tuple[str, dt.datetime]]:
        with session_scope(self.engine) as s:
            case = cases.get_case(s, self.reference)
            return [
                (e.data["deadline"], e.at)
                for e in s.execute(
                    select(CaseEvent).where(
                        col(CaseEvent.case_id) == case.id, col(CaseEvent.event) == "deadline_missed"
                    )
                ).scalars()
            ]

    def bodies(self, template: str, channel: str) -> list[str]:
        """The texts as sent, each checked to end with the family page's link, then
        without it (its token is random), so the words can be compared exactly."""
        out = []
        for _, n in self.sent:
            if (n.template, n.channel) != (template, channel):
                continue
            body = n.body
            if n.recipient_role == "family" and channel == "sms":
                assert re.search(r" Your page: \S+/family/[A-Za-z0-9_-]{32}$", body), body
                body = re.sub(r" Your page: \S+$", "", body)
            out.append(body)
        return out

    # -- the use cases, as the web app and CLI call them ------------------------------------

    def open(self, s: Session, now: dt.datetime) -> None:
        case = cases.open_case(
            s,
            intake(phone="07911 234567", email=FAMILY_EMAIL, child_name=CHILD, summary="x"),
            now=now,
            actor=ADVISER,
            settings=self.settings,
        )
        self.reference = case.reference

    def event(self, event: str, **data: Any) -> Callable[[Session, dt.datetime], Any]:
        def run(s: Session, now: dt.datetime) -> None:
            cases.advance(
                s, self.reference, event, now=now, actor=ADVISER, settings=self.settings, data=data
            )

        return run

    def allocate(self, code: str) -> Callable[[Session, dt.datetime], Any]:
        def run(s: Session, now: dt.datetime) -> None:
            allocate_to(s, self.reference, code, now=now, actor=ADVISER, settings=self.settings)
            self.provider_email = PROVIDER_EMAILS[code]

        return run

    def provider_answers(
        self, code: str, accept: bool, note: str = ""
    ) -> Callable[[Session, dt.datetime], Any]:
        def run(s: Session, now: dt.datetime) -> None:
            staff = cases.Actor(
                id=f"user:staff@{code}.example.org",
                role="provider",
                channel="portal",
                provider_id=cases.find_provider(s, code).id,
            )
            cases.respond_to_allocation(
                s,
                self.reference,
                accept=accept,
                now=now,
                actor=staff,
                settings=self.settings,
                note=note,
            )

        return run


@pytest.fixture
def life(engine: Engine, session: Session, settings: Settings) -> Life:
    return Life(engine, settings, at("2026-11-09", "10:00"))


# --- (b) A mediated case, start to finish ---------------------------------------------------


@pytest.fixture(params=["outbox", "http"])
def transport(request: pytest.FixtureRequest, settings: Settings) -> Iterator[dict[str, Any]]:
    """No keys (the outbox), or keys pointing at the loopback SendGrid and Twilio."""
    if request.param == "outbox":
        yield {"settings": settings}
        return
    with SendGridFake() as sendgrid, TwilioFake() as twilio:
        keyed = load_settings(
            environment="test",
            public_url="https://casework.example.org",
            sendgrid_api_key=sendgrid.api_key,
            sendgrid_host=sendgrid.url,
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            twilio_from="+447700900000",
            twilio_base_url=twilio.url,
            provider_timeout_seconds=5,
        )
        yield {"settings": keyed, "sendgrid": sendgrid, "twilio": twilio}


def test_a_mediated_case_from_request_to_appeal_lodged(
    engine: Engine, session: Session, transport: dict[str, Any]
) -> None:
    life = Life(engine, transport["settings"], at("2026-11-09", "10:00"))

    # Allocated Tue 10 Nov, accepted Wed 11 Nov: the acceptance reminder (Thu 12 Nov
    # 09:00) and escalation (Fri 13 Nov 09:00) never go. The family chose mediation on
    # Thu 12 Nov: their window reminder (2 Jan 2027 - 14 days = Sat 19 Dec) never goes.
    # Meeting limit: 12 Nov + 30 days = Sat 12 Dec; provider 10 and 5 days before.
    life.expect("2026-12-02", "09:00", provider("provider_meeting_limit_reminder"))
    life.expect("2026-12-07", "09:00", provider("provider_meeting_limit_reminder"))
    # Meeting on Wed 9 Dec: the family the day before.
    life.expect("2026-12-08", "09:00", family("family_meeting_reminder"))
    # Held Wed 9 Dec: certificate due 3 working days later, Mon 14 Dec; the provider is
    # reminded the working day before, Fri 11 Dec.
    life.expect("2026-12-11", "09:00", provider("provider_certificate_reminder"))
    # What was agreed is due by Wed 23 Dec (2 weeks); nothing in casework records the
    # LA doing it, so the clock is missed at midnight and the adviser told on 24 Dec.
    life.expect("2026-12-24", "09:00", adviser("escalation_missed"))
    # Certificate Fri 11 Dec: appeal by the later of 2 Jan (decision + 2 months) and
    # Mon 11 Jan 2027 (certificate + 1 month), 5pm. Family 14 and 7 days before; the
    # 2-day reminder (Sat 9 Jan) is not sent because the appeal is lodged on Wed 6 Jan.
    life.expect("2026-12-28", "09:00", family("family_appeal_reminder"))
    life.expect("2027-01-04", "09:00", family("family_appeal_reminder"))

    life.do("2026-11-09", "10:00", life.open, family("request_acknowledged"))
    life.do("2026-11-10", "10:00", life.event("advise"), family("options_after_advice"))
    life.do(
        "2026-11-10",
        "11:00",
        life.allocate("link"),
        provider("allocation_notice"),
    )
    # The family hears who will run mediation once the provider has accepted.
    life.do(
        "2026-11-11",
        "15:00",
        life.provider_answers("link", accept=True),
        family("provider_allocated"),
    )
    life.do(
        "2026-11-12",
        "10:00",
        life.event("choose_mediation", la_told_on=D(2026, 11, 12)),
        family("mediation_chosen", ("email",)),  # who must arrange it, by Sat 12 Dec
    )
    life.do(
        "2026-12-03",
        "10:00",
        life.event("schedule_meeting", meeting_on=D(2026, 12, 9), meeting_time="10:00"),
        family("meeting_confirmed"),
        provider("meeting_arranged_provider"),  # the mediator gets the same invitation
    )
    life.do(
        "2026-12-09",
        "16:00",
        life.event(
            "record_meeting",
            meeting_held_on=D(2026, 12, 9),
            outcome="agreement",
            agreement="The LA will carry out the EHC needs assessment",
        ),
    )
    life.do(
        "2026-12-11",
        "14:00",
        life.event("issue_certificate", certificate_on=D(2026, 12, 11)),
        family("certificate_issued"),
    )
    life.do("2026-12-14", "10:00", life.event("confirm_appeal_ready"))
    life.do(
        "2027-01-06",
        "11:00",
        life.event("close", outcome="appeal_lodged"),
        family("case_closed"),
    )
    life.finish("2027-01-15")  # past the 2-day reminder (9 Jan) and the escalation (12 Jan)

    assert life.clocks() == [
        ("contact_adviser", "met"),
        ("allocation_acceptance", "met"),
        ("mediation_meeting", "met"),
        ("scheduled_meeting", "met"),
        ("certificate_after_meeting", "met"),
        ("agreement_implemented", "missed"),
        ("appeal", "met"),
    ]
    # Due by the end of Wed 23 Dec; the tick a minute later marks it missed.
    assert life.missed_events() == [("agreement_implemented", at("2026-12-24", "00:01"))]
    assert life.bodies("certificate_issued", "sms") == [
        f"IAS Manchester: ref {life.reference}. Your certificate is issued. Any appeal must"
        " reach the Tribunal by Monday 11 January 2027, 5pm. Call 0161 209 8356"
    ]
    assert life.bodies("meeting_confirmed", "sms") == [
        f"IAS Manchester: ref {life.reference}. Your meeting is on Wednesday 9 December 2026"
        " at 10:00. Questions: 0161 209 8356"
    ]
    assert all(
        "Monday 11 January 2027, 5pm" in b for b in life.bodies("family_appeal_reminder", "sms")
    )
    assert len(life.sent) == 25  # with the invitation to the provider

    if "twilio" in transport:
        # The same notices went over HTTP, each exactly once, through the real SDKs.
        twilio, sendgrid = transport["twilio"], transport["sendgrid"]
        sms = [n for _, n in life.sent if n.channel == "sms"]
        emails = [n for _, n in life.sent if n.channel == "email"]
        assert all(n.provider == "twilio" for n in sms)
        assert all(n.provider == "sendgrid" for n in emails)
        assert sorted(r.body["Body"] for r in twilio.requests) == sorted(n.body for n in sms)
        assert {r.body["To"] for r in twilio.requests} == {FAMILY_PHONE}
        assert not any("Kai" in r.body["Body"] for r in twilio.requests)
        received = sorted(r.body["custom_args"]["notice_id"] for r in sendgrid.requests)
        assert received == sorted(n.public_id for n in emails)
    else:
        assert {n.provider for _, n in life.sent} == {"outbox"}


# --- (a) A declined case -----------------------------------------------------------------------


def test_a_declined_case_from_request_to_window_ended(life: Life) -> None:
    # Declined Thu 12 Nov: certificate due 3 working days later, Tue 17 Nov; the adviser
    # is reminded the working day before, Mon 16 Nov. The certificate is issued that
    # day, so the manager's escalation (Wed 18 Nov) never goes.
    life.expect("2026-11-16", "09:00", adviser("adviser_certificate_reminder"))
    # Certificate Mon 16 Nov: appeal by the later of Sat 2 Jan 2027 (decision + 2
    # months) and 16 Dec (certificate + 1 month): 2 Jan is not a working day, so Mon 4
    # Jan 2027, 5pm. Family 14, 7 and 2 days before (calendar days, 09:00).
    life.expect("2026-12-21", "09:00", family("family_appeal_reminder"))
    life.expect("2026-12-28", "09:00", family("family_appeal_reminder"))  # a bank holiday
    life.expect("2027-01-02", "09:00", family("family_appeal_reminder"))  # a Saturday
    # Nobody closed the case: missed at 5pm on Mon 4 Jan, the adviser told the next day.
    life.expect("2027-01-05", "09:00", adviser("escalation_appeal_window_ended"))

    life.do("2026-11-09", "10:00", life.open, family("request_acknowledged"))
    life.do("2026-11-10", "10:00", life.event("advise"), family("options_after_advice"))
    life.do("2026-11-12", "10:00", life.event("decline", declined_on=D(2026, 11, 12)))
    life.do(
        "2026-11-16",
        "14:00",
        life.event("issue_certificate", certificate_on=D(2026, 11, 16)),
        family("certificate_issued"),
    )
    life.do("2026-11-17", "10:00", life.event("confirm_appeal_ready"))
    life.do(
        "2027-01-06",
        "10:00",
        life.event("close", outcome="no_appeal"),
        family("case_closed"),
    )
    life.finish("2027-01-10")

    assert life.clocks() == [
        ("contact_adviser", "met"),
        ("certificate_after_decline", "met"),
        ("appeal", "missed"),
    ]
    assert life.missed_events() == [("appeal", at("2027-01-04", "17:01"))]
    assert life.bodies("options_after_advice", "sms") == [
        f"IAS Manchester: ref {life.reference}. Please tell us by Saturday 2 January 2027"
        " whether you want mediation. Questions: 0161 209 8356"
    ]
    assert all(
        "Monday 4 January 2027, 5pm" in b
        for b in life.bodies("family_appeal_reminder", "sms")
        + life.bodies("certificate_issued", "sms")
    )
    (closed,) = life.bodies("case_closed", "email")
    assert "passed on Monday 4 January 2027, 5pm" in closed  # never "by" a day gone
    assert "the Tribunal decides whether to accept a late appeal" in closed.replace(
        "The T", "the T"
    )
    assert len(life.sent) == 16


# --- A withdrawn case ---------------------------------------------------------------------------


def test_a_withdrawn_case_is_told_once_and_then_hears_nothing(life: Life) -> None:
    # Withdrawn on Fri 20 Nov at 21:30, inside SMS quiet hours: the email goes at
    # once, the SMS at 08:00 next morning. The mediation reminders (2 and 7 Dec), the
    # escalations (13 and 16 Dec) and the family's window reminder (19 Dec) never go.
    life.expect("2026-11-21", "08:00", family("withdrawal_confirmed", ("sms",)))

    life.do("2026-11-09", "10:00", life.open, family("request_acknowledged"))
    life.do("2026-11-10", "10:00", life.event("advise"), family("options_after_advice"))
    life.do(
        "2026-11-10",
        "11:00",
        life.allocate("link"),
        provider("allocation_notice"),
    )
    # The family hears who will run mediation once the provider has accepted.
    life.do(
        "2026-11-11",
        "15:00",
        life.provider_answers("link", accept=True),
        family("provider_allocated"),
    )
    life.do(
        "2026-11-12",
        "10:00",
        life.event("choose_mediation", la_told_on=D(2026, 11, 12)),
        family("mediation_chosen", ("email",)),  # who must arrange it, by Sat 12 Dec
    )
    life.do(
        "2026-11-20",
        "21:30",
        life.event("withdraw", reason="The school agreed extra support; no appeal"),
        family("withdrawal_confirmed", ("email",)),
    )
    life.finish("2026-12-31")

    assert life.clocks() == [
        ("contact_adviser", "met"),
        ("allocation_acceptance", "met"),
        ("mediation_meeting", "cancelled"),
    ]
    assert life.missed_events() == []
    assert len(life.sent) == 10


# --- A provider that does not answer --------------------------------------------------------


def test_a_provider_that_does_not_answer_in_2_working_days_is_escalated(life: Life) -> None:
    # Allocated Tue 10 Nov 11:00: Link must answer within 2 working days, by Thu 12
    # Nov. It is reminded that morning; at midnight the clock is missed and the
    # adviser is told at 09:00 on Fri 13 Nov.
    life.expect("2026-11-12", "09:00", provider("provider_acceptance_reminder"))
    life.expect("2026-11-13", "09:00", adviser("escalation_missed"))

    life.do("2026-11-09", "10:00", life.open, family("request_acknowledged"))
    life.do("2026-11-10", "10:00", life.event("advise"), family("options_after_advice"))
    life.do(
        "2026-11-10",
        "11:00",
        life.allocate("link"),
        provider("allocation_notice"),
    )
    # Link finally declines; the adviser is told and allocates KIDS (Mon 16 Nov), which
    # answers the next day, before its own reminder (Wed 18 Nov 09:00).
    life.do(
        "2026-11-13",
        "11:00",
        life.provider_answers("link", accept=False, note="No mediator free until January"),
        adviser("escalation_allocation_declined"),
    )
    life.do(
        "2026-11-16",
        "10:00",
        life.allocate("kids"),
        provider("allocation_notice"),
    )
    # Only KIDS, which accepted, is ever named to the family.
    life.do(
        "2026-11-17",
        "10:00",
        life.provider_answers("kids", accept=True),
        family("provider_allocated"),
    )
    life.finish("2026-11-30")

    assert life.clocks() == [
        ("contact_adviser", "open"),
        ("allocation_acceptance", "missed"),
        ("allocation_acceptance", "met"),
    ]
    assert life.missed_events() == [("allocation_acceptance", at("2026-11-13", "00:01"))]
    (escalation,) = [n for _, n in life.sent if n.template == "escalation_missed"]
    assert "Link Mediation Ltd" in escalation.body
    assert "Thursday 12 November 2026" in escalation.body
    (declined,) = [n for _, n in life.sent if n.template == "escalation_allocation_declined"]
    assert "No mediator free until January" in declined.body
    allocations = [n for _, n in life.sent if n.template == "allocation_notice"]
    assert [n.to_address for n in allocations] == [
        PROVIDER_EMAILS["link"],
        PROVIDER_EMAILS["kids"],
    ]
