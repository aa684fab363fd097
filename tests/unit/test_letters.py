"""Letters never misstate the law: every template, in every state it can be sent in.

domain.md's "Letters must not misstate the law" checked two ways:

- a sweep that renders every notice template for every state it can be written in
  (each case kind x placement-only x health care x contact after the 2-month window
  x a deemed certificate followed by a meeting x the LA's letter lacking the reg 32
  information), through the code that builds notice contexts, and checks that no
  date before the day the notice is written is offered as one to meet, that nothing
  says an appeal needs no certificate unless the appeal is placement-only, that no
  date is written as digits, and that every SMS is one GSM-7 part with no name;
- focused tests, one per rule, on the wording the family reads.

Templates write every date a family must meet as "by <date>" (and a passed one as
"passed on <date>"); the sweep relies on that markup, so a template that offers a
past date in another form ("deadline: <date>", "due <date>") is caught as well.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import pytest

from casework import deadlines as dl
from casework import letters
from casework.config import load_settings
from casework.notices import (
    CaseFacts,
    FamilyContact,
    NoticeRules,
    _event_context,
    base_context,
    deadline_context,
    outbox_row,
)
from casework.notify.render import render, sms_segments, templates_available

D = dt.date
SETTINGS = load_settings(environment="test", public_url="https://casework.example.org")
TRIBUNAL_GUIDANCE_URL = SETTINGS.service.tribunal_guidance_url
RULES = NoticeRules.from_settings(SETTINGS)
CHILD = "Kai Whitfield"

# --- Reading dates back out of a letter -----------------------------------------------------

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = [dt.date(2026, m, 1).strftime("%B") for m in range(1, 13)]
DATE_RE = re.compile(
    rf"\b(?:(?P<weekday>{'|'.join(WEEKDAYS)}) )?(?P<day>\d{{1,2}}) (?P<month>{'|'.join(MONTHS)})"
    r" (?P<year>\d{4})\b"
)
# What comes right before a date that is offered as one to meet.
DEADLINE_CUE = re.compile(
    r"(?:\bby|\bbefore|\buntil|\bno later than|\bdeadline(?: is)?:?"
    r"|(?<!was )(?<!had )\bdue(?: by| on)?:?)\s+$",
    re.IGNORECASE,
)
# Words that offer a date as still ahead, anywhere in its sentence.
FORWARD = re.compile(r"\b(you have until|there is still time|you still have)\b", re.IGNORECASE)
ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b")
# Saying or implying that an appeal needs no certificate.
NO_CERTIFICATE = re.compile(
    r"no certificate|needs? no certificate|without (?:a |any )?(?:mediation )?certificate"
    r"|(?:do not|don't|does not|doesn't) need (?:mediation advice or )?(?:a |any )?"
    r"(?:mediation )?certificate|certificate is not needed|not need a certificate"
    r"|without mediation,? (?:an |any |you can )?appeal",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Found:
    date: dt.date
    sentence: str
    offered: bool  # written as a date to meet ("by <date>")


def sentence_around(text: str, start: int, end: int) -> str:
    left = max(text.rfind(". ", 0, start), text.rfind("\n", 0, start)) + 1
    stops = [i for i in (text.find(". ", end), text.find("\n", end)) if i != -1]
    return text[left : min(stops) if stops else len(text)].strip()


def dates_in(text: str) -> Iterator[Found]:
    for m in DATE_RE.finditer(text):
        day = dt.date(int(m["year"]), MONTHS.index(m["month"]) + 1, int(m["day"]))
        if m["weekday"]:
            assert m["weekday"] == WEEKDAYS[day.weekday()], f"wrong weekday: {m[0]!r}"
        before = text[max(0, m.start() - 40) : m.start()]
        yield Found(
            day, sentence_around(text, m.start(), m.end()), bool(DEADLINE_CUE.search(before))
        )


def check_letter(text: str, sent_on: dt.date, *, placement_only: bool, where: str) -> None:
    """The law's rules every letter obeys, whatever it is about."""
    assert not ISO_DATE.search(text), f"a date in digits: {where}\n{text}"
    for found in dates_in(text):
        if found.date < sent_on:
            assert not found.offered, (
                f"{found.date:%d %b %Y} (before {sent_on:%d %b %Y}) offered as a date to meet"
                f" in {where}: {found.sentence!r}"
            )
            assert not FORWARD.search(found.sentence), f"{where}: {found.sentence!r}"
    if not placement_only:
        hit = NO_CERTIFICATE.search(text)
        assert hit is None, f"{where} says an appeal needs no certificate: {hit[0]!r}\n{text}"


# --- Case timelines ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Flags:
    placement_only: bool = False
    health: str = "none"  # none | health_care | health_only
    late: bool = False  # the family came after its 2-month reg 33 window
    reg32: bool | None = None  # did the LA's decision letter give the reg 32 information?

    @property
    def label(self) -> str:
        parts = [
            "placement-only" if self.placement_only else "",
            self.health if self.health != "none" else "",
            "late" if self.late else "",
            "reg32-missing" if self.reg32 is False else "",
        ]
        return ",".join(p for p in parts if p) or "plain"


FLAGS = [
    Flags(p, h, late, reg32)
    for p, h, late, reg32 in itertools.product(
        (False, True), ("none", "health_care", "health_only"), (False, True), (None, False)
    )
]

# Dates, worked out by hand. The decision (on time) was sent Mon 2 Mar 2026: the
# 2-month window ends Sat 2 May 2026 and an appeal on the decision alone is due by
# Tue 5 May 2026, 5pm (2 May is a Saturday, Mon 4 May a bank holiday). A late family's
# decision was sent Mon 15 Dec 2025: its window ended Sun 15 Feb 2026.
ON_TIME_DECISION = D(2026, 3, 2)
LATE_DECISION = D(2025, 12, 15)
OPENED = D(2026, 3, 16)
ADVISED = D(2026, 3, 17)
CHOSE = D(2026, 3, 20)  # chose mediation (or declined) and the LA was told the same day
ICB_TOLD = D(2026, 3, 24)
MEETING = D(2026, 4, 10)
CERTIFICATE = D(2026, 4, 14)  # after the meeting, or after a decline
NOT_ARRANGED = D(2026, 4, 20)  # the LA reports the meeting cannot be held in 30 days
DEEMED_CERTIFICATE = D(2026, 4, 22)
LATE_MEETING = D(2026, 4, 30)  # the meeting after the deemed certificate
SECOND_CERTIFICATE = D(2026, 5, 5)


def agreement_items(meeting: dt.date, sent_on: dt.date) -> list[dict[str, Any]]:
    """One item still ahead, one agreed for a day already gone, one done."""
    return [
        {
            "description": "The LA will carry out the EHC needs assessment",
            "body": "la",
            "due_on": meeting + dt.timedelta(weeks=2)
            if meeting + dt.timedelta(weeks=2) >= sent_on
            else sent_on + dt.timedelta(days=5),
        },
        {
            "description": "A speech and language review this term",
            "body": "icb",
            "due_on": sent_on - dt.timedelta(days=1),
        },
        {
            "description": "A meeting with the school",
            "body": "la",
            "due_on": meeting,
            "done_on": meeting,
        },
    ]


@dataclass
class Snapshot:
    """One case at one state, and a day a notice is written on."""

    label: str
    state: str
    flags: Flags
    fields: dict[str, Any]
    sent_on: dt.date
    kind: str = "mediation"

    def case(self) -> SimpleNamespace:
        base: dict[str, Any] = {
            "id": 42,
            "reference": "MED-2026-0042",
            "kind": self.kind,
            "state": self.state,
            "opened_at": dt.datetime.combine(OPENED, dt.time(10), tzinfo=dt.UTC),
            "child_name": CHILD,
            "summary": "LA refused an EHC needs assessment",
            "decision_date": None,
            "health_care": False,
            "health_only": False,
            "placement_only": False,
            "meeting_on": None,
            "meeting_time": None,
            "meeting_held_on": None,
            "meeting_outcome": None,
            "certificate_on": None,
            "certificate_type": None,
            "appeal_due": None,
            "la_told_on": None,
            "icb_told_on": None,
            "declined_on": None,
            "close_outcome": None,
        }
        return SimpleNamespace(**(base | self.fields))


def _flag_fields(flags: Flags) -> dict[str, Any]:
    return {
        "decision_date": LATE_DECISION if flags.late else ON_TIME_DECISION,
        "placement_only": flags.placement_only,
        "reg32_info_given": flags.reg32,
    }


def _mediating(flags: Flags, *, icb_known: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"chose_on": CHOSE, "la_told_on": CHOSE}
    if flags.health != "none":
        out["health_care"] = True
        out["health_only"] = flags.health == "health_only"
        if icb_known:
            out["icb_told_on"] = ICB_TOLD
    return out


def _certified(flags: Flags, path: str) -> dict[str, Any]:
    decision = _flag_fields(flags)["decision_date"]
    if path == "declined":
        cert, fields = CERTIFICATE, {"declined_on": CHOSE, "certificate_type": "declined"}
    elif path == "meeting":
        cert = CERTIFICATE
        fields = _mediating(flags) | {
            "meeting_on": MEETING,
            "meeting_held_on": MEETING,
            "meeting_outcome": "agreement",
            "certificate_type": "mediation_held",
        }
    else:  # deemed, deemed+meeting, deemed+second
        cert = DEEMED_CERTIFICATE
        fields = _mediating(flags) | {
            "not_arranged_reported_on": NOT_ARRANGED,
            "certificate_type": "not_arranged",
        }
        if path != "deemed":
            fields |= {"meeting_held_on": LATE_MEETING, "meeting_outcome": "agreement"}
        if path == "deemed+second":
            fields["second_certificate_on"] = SECOND_CERTIFICATE
    fields |= {"certificate_on": cert, "appeal_due": dl.appeal_deadline(decision, cert)}
    return fields


CERT_PATHS = ("declined", "meeting", "deemed", "deemed+meeting", "deemed+second")


def mediation_snapshots(flags: Flags) -> Iterator[Snapshot]:
    """Every state a mediation case can be in with these flags, on the days notices go."""
    f = _flag_fields(flags)
    yield Snapshot("requested", "requested", flags, f, OPENED)
    yield Snapshot("advised", "advised", flags, f, ADVISED)
    if flags.placement_only:
        exempt = f | {"appeal_due": dl.appeal_deadline(f["decision_date"])}
        yield Snapshot("exempt", "appeal_ready", flags, exempt, ADVISED)
        # Written after the appeal date passed (a withdrawal or a close months later).
        yield Snapshot("exempt, months later", "appeal_ready", flags, exempt, D(2026, 7, 1))
    for icb_known in (True, False) if flags.health != "none" else (True,):
        m = f | _mediating(flags, icb_known=icb_known)
        yield Snapshot(f"mediating (ICB told: {icb_known})", "mediating", flags, m, CHOSE)
        scheduled = m | {"meeting_on": MEETING, "meeting_time": "10:00"}
        yield Snapshot("meeting scheduled", "mediating", flags, scheduled, D(2026, 4, 1))
        # The 30 days ended without a meeting (20 Apr, or 23 Apr from the ICB).
        yield Snapshot("mediating, 30 days over", "mediating", flags, m, D(2026, 4, 27))
    held = (
        f
        | _mediating(flags)
        | {
            "meeting_on": MEETING,
            "meeting_held_on": MEETING,
            "meeting_outcome": "agreement",
        }
    )
    yield Snapshot("meeting held", "mediating", flags, held, MEETING + dt.timedelta(days=1))
    yield Snapshot("declined", "declined", flags, f | {"declined_on": CHOSE}, CHOSE)
    for path in CERT_PATHS:
        c = f | _certified(flags, path)
        issued = SECOND_CERTIFICATE if path == "deemed+second" else c["certificate_on"]
        for state in ("certificate_issued", "appeal_ready"):
            yield Snapshot(f"{state} ({path})", state, flags, c, issued)
            # Written after the appeal date passed (a withdrawal, a close).
            yield Snapshot(f"{state} ({path}), months later", state, flags, c, D(2026, 7, 1))


def _dr_snapshots() -> Iterator[Snapshot]:
    flags = Flags()
    for state, sent_on in (
        ("requested", OPENED),
        ("advised", ADVISED),
        ("allocated", CHOSE),
        ("meeting_held", MEETING),
    ):
        fields = {"reference": "DR-2026-0042"}
        if state == "allocated":
            fields |= {"meeting_on": MEETING, "meeting_time": "10:00"}
        yield Snapshot(state, state, flags, fields, sent_on, kind="disagreement")


# Which states a notice caused by an event is written in (the state the event leaves
# the case in, or, for the final states, the state it came from), per the mediation
# flow and issue 14's contract. Hand-written: a new event notice must be added here.
EVENT_STATES: dict[tuple[str, str], tuple[str, ...]] = {
    ("mediation", "open"): ("requested",),
    ("mediation", "advise"): ("advised",),
    ("mediation", "allocate_provider"): ("requested", "advised", "mediating"),
    ("mediation", "accept_allocation"): ("requested", "advised", "mediating"),
    ("mediation", "decline_allocation"): ("requested", "advised"),
    ("mediation", "choose_mediation"): ("mediating",),
    # Declined while mediation was being arranged (its notices only when a meeting was
    # arranged and so cancelled: only_when = "meeting_cancelled").
    ("mediation", "decline"): ("declined",),
    ("mediation", "record_icb_told"): ("mediating",),
    ("mediation", "schedule_meeting"): ("mediating", "certificate_issued", "appeal_ready"),
    ("mediation", "cancel_meeting"): ("mediating", "certificate_issued", "appeal_ready"),
    ("mediation", "add_agreement_item"): ("mediating", "certificate_issued", "appeal_ready"),
    ("mediation", "issue_certificate"): ("certificate_issued", "appeal_ready"),
    # A correction of a certificate already issued: the case is where the certificate left it.
    ("mediation", "reissue_certificate"): ("certificate_issued", "appeal_ready"),
    ("mediation", "mark_exempt"): ("appeal_ready",),
    # withdraw from any open state; close from appeal_ready: the letter is written
    # with what the case knew in the state it left.
    ("mediation", "withdraw"): (
        "requested",
        "advised",
        "mediating",
        "declined",
        "certificate_issued",
        "appeal_ready",
    ),
    ("mediation", "close"): ("appeal_ready",),
    # A new link to the family's page, and a call back asked for on it: any state the
    # link works in.
    ("mediation", "issue_family_link"): (
        "requested",
        "advised",
        "mediating",
        "declined",
        "certificate_issued",
        "appeal_ready",
        "closed",
        "withdrawn",
    ),
    ("disagreement", "issue_family_link"): (
        "requested",
        "advised",
        "allocated",
        "meeting_held",
        "closed",
        "withdrawn",
    ),
    ("mediation", "family_call_back"): (
        "requested",
        "advised",
        "mediating",
        "declined",
        "certificate_issued",
        "appeal_ready",
        "closed",
        "withdrawn",
    ),
    ("disagreement", "family_call_back"): (
        "requested",
        "advised",
        "allocated",
        "meeting_held",
        "closed",
        "withdrawn",
    ),
    ("disagreement", "open"): ("requested",),
    ("disagreement", "advise"): ("advised",),
    ("disagreement", "allocate_provider"): ("allocated",),
    ("disagreement", "accept_allocation"): ("allocated",),
    ("disagreement", "decline_allocation"): ("advised", "allocated"),
    ("disagreement", "schedule_meeting"): ("allocated",),
    ("disagreement", "cancel_meeting"): ("allocated",),
    ("disagreement", "withdraw"): ("requested", "advised", "allocated", "meeting_held"),
}

# Which states each clock is open in (reminders and escalations on it go out then).
CLOCK_STATES: dict[str, tuple[str, ...]] = {
    "contact_adviser": ("requested", "advised"),
    "certificate_after_decline": ("declined",),
    "icb_notified": ("mediating",),
    "mediation_meeting": ("mediating",),
    "certificate_not_arranged": ("mediating",),
    "certificate_after_meeting": ("mediating", "certificate_issued", "appeal_ready"),
    "agreement_implemented": ("mediating", "certificate_issued", "appeal_ready"),
    "icb_tells_la_of_agreement": ("mediating", "certificate_issued", "appeal_ready"),
    "appeal": ("certificate_issued", "appeal_ready"),
    "scheduled_meeting": ("mediating",),
    "allocation_acceptance": ("requested", "advised", "mediating", "allocated"),
    "dr_advice": ("requested",),
    "dr_allocation": ("advised",),
    "dr_meeting": ("allocated",),
}


def _event_fits(event: str, snap: Snapshot) -> bool:
    """Leave out combinations no use case can produce."""
    fields = snap.fields
    if event == "mark_exempt":
        return snap.label.startswith("exempt")
    if event == "record_icb_told":
        return fields.get("icb_told_on") is not None
    if event == "issue_certificate":
        return fields.get("certificate_on") is not None and not snap.label.endswith("later")
    if event == "add_agreement_item":
        return fields.get("meeting_held_on") is not None
    if event in ("schedule_meeting", "cancel_meeting") and snap.state != "mediating":
        return "deemed" in snap.label and fields.get("meeting_held_on") is None
    if event == "choose_mediation":
        return snap.label.startswith("mediating (")
    if event == "close":
        return fields.get("appeal_due") is not None
    return True


def _data_for(event: str, snap: Snapshot) -> dict[str, Any]:
    fields = snap.fields
    if event == "choose_mediation":
        keys = ("chose_on", "la_told_on", "health_care", "health_only", "icb_told_on")
        return {k: fields[k] for k in keys if k in fields}
    if event == "record_icb_told":
        return {"icb_told_on": fields["icb_told_on"]}
    if event == "withdraw":
        # The mediator's notice goes out only when a meeting was arranged and so called
        # off (only_when = "meeting_cancelled"): its day is in the step's data then.
        meeting_on = snap.sent_on + dt.timedelta(days=7)
        return {
            "reason": "The family no longer wants our help",
            "cancelled_meeting_on": meeting_on.isoformat(),
        }
    if event == "cancel_meeting":
        meeting_on = snap.sent_on + dt.timedelta(days=7)
        return {"reason": "The mediator is ill", "cancelled_meeting_on": meeting_on.isoformat()}
    if event == "decline":
        meeting_on = snap.sent_on + dt.timedelta(days=7)
        return {"declined_on": snap.sent_on, "cancelled_meeting_on": meeting_on.isoformat()}
    if event == "close":
        return {"outcome": "no_appeal" if "later" in snap.label else "appeal_lodged"}
    if event == "add_agreement_item":
        return {"description": "The LA will carry out the EHC needs assessment", "body": "la"}
    return {}


def _facts(snap: Snapshot) -> CaseFacts:
    return CaseFacts(
        case_id=42,
        reference=snap.fields.get("reference", "MED-2026-0042"),
        kind=snap.kind,
        state=snap.state,
        family=FamilyContact(
            "Jo Whitfield", "+447911123456", "jo@example.org", ("sms", "email"), True
        ),
        provider_name="Link Mediation Ltd",
        provider_email="referrals@link.example.org",
    )


def event_context(event: str, snap: Snapshot) -> dict[str, Any]:
    case = snap.case()
    if event == "schedule_meeting" and case.meeting_on is None:
        case.meeting_on, case.meeting_time = snap.sent_on + dt.timedelta(days=7), "10:00"
    opened: list[Any] = []
    if event == "issue_certificate" and snap.fields.get("second_certificate_on") is None:
        clock = dl.appeal_clock(case.decision_date, case.certificate_on)
        opened.append(
            SimpleNamespace(kind="appeal", due_date=clock.due, explanation=clock.explanation)
        )
    if event == "mark_exempt":
        clock = dl.appeal_clock(case.decision_date)
        opened.append(
            SimpleNamespace(kind="appeal", due_date=clock.due, explanation=clock.explanation)
        )
    held = snap.fields.get("meeting_held_on")
    ctx = SimpleNamespace(
        case=case,
        event=event,
        data=_data_for(event, snap),
        opened=opened,
        now=dt.datetime.combine(snap.sent_on, dt.time(10), tzinfo=dl.LONDON),
        settings=SETTINGS,
        agreement_items=agreement_items(held, snap.sent_on) if held else [],
    )
    context = base_context(_facts(snap), SETTINGS) | _event_context(ctx) | {"notice_kind": "event"}
    row = outbox_row(
        key="k",
        case_id=42,
        template="t",
        recipient="family",
        channel="email",
        address="jo@example.org",
        context=context,
        not_before=ctx.now,
        now=ctx.now,
    )
    return row["context"]


def reminder_context(kind: str, rule: Any, snap: Snapshot) -> tuple[dict[str, Any], dt.date]:
    """A reminder or escalation on a clock due in this snapshot, written on its fire day."""
    due = snap.sent_on + dt.timedelta(days=10)
    clock = dl.Clock(
        dl.DeadlineKind(kind), due, "SEND Regulations 2014, Part 2", f"worked out to {dl.fmt(due)}"
    )
    sent_on = rule.fire_day(due)
    context = (
        base_context(_facts(snap), SETTINGS)
        | deadline_context(kind, clock.due, clock.explanation, clock.citation)
        | {"notice_kind": rule.kind, "rule": rule.id}
    )
    moment = dt.datetime.combine(sent_on, dt.time(9), tzinfo=dl.LONDON)
    row = outbox_row(
        key="k",
        case_id=42,
        template=rule.template,
        recipient=rule.recipient,
        channel="email",
        address="x@example.org",
        context=context,
        not_before=moment,
        now=moment,
    )
    return row["context"], sent_on


@dataclass(frozen=True)
class Rendering:
    template: str
    source: str
    snapshot: Snapshot
    context: dict[str, Any]
    sent_on: dt.date


def every_rendering() -> list[Rendering]:
    snapshots = [s for flags in FLAGS for s in mediation_snapshots(flags)] + list(_dr_snapshots())
    out: list[Rendering] = []
    for rule in RULES.events:
        for snap in snapshots:
            if rule.case_kind not in (None, snap.kind):
                continue
            if snap.state not in EVENT_STATES.get((snap.kind, rule.event), ()):
                continue
            if not _event_fits(rule.event, snap):
                continue
            out.append(
                Rendering(
                    rule.template,
                    f"event {rule.event}",
                    snap,
                    event_context(rule.event, snap),
                    snap.sent_on,
                )
            )
    for kind, rules in RULES.reminders.items():
        if kind not in CLOCK_STATES:
            # A clock of the service, not of the case's law (a request about personal
            # data): its escalations go to managers and test_render covers them.
            continue
        for rule in rules:
            for snap in snapshots:
                if snap.state not in CLOCK_STATES[kind]:
                    continue
                if kind == "contact_adviser" and snap.flags.placement_only:
                    continue  # no reg 33 clock for a placement-only appeal
                context, sent_on = reminder_context(kind, rule, snap)
                out.append(Rendering(rule.template, f"rule {rule.id}", snap, context, sent_on))
    return out


RENDERINGS = every_rendering()


def test_the_sweep_covers_every_template_and_every_event_notice_in_config() -> None:
    rendered = {r.template for r in RENDERINGS}
    wanted = {name for name, _ in templates_available()} - {
        "daily_digest",
        "escalation_delivery_failed",  # no case state: test_render covers them
        "escalation_credentials_rejected",  # an operator alarm, about no case
        "monthly_report",  # to commissioners, about no case
        "family_code",  # a sign-in code: nothing of the case (test_render covers it)
        "family_opted_out",  # a delivery outcome, not a case state (test_render)
        "one_off_message",  # the adviser's own words (tests/web/test_family_message.py)
    }
    assert wanted <= rendered, sorted(wanted - rendered)
    for rule in RULES.events:
        kinds = ("mediation", "disagreement") if rule.case_kind is None else (rule.case_kind,)
        assert any((k, rule.event) in EVENT_STATES for k in kinds), f"no states for {rule.event}"
    assert len(RENDERINGS) > 1000  # every flag combination, not a sample


@pytest.mark.parametrize("template", sorted({r.template for r in RENDERINGS}))
def test_no_letter_offers_a_past_date_or_an_appeal_without_a_certificate(template: str) -> None:
    channels = [c for n, c in templates_available() if n == template]
    checked = 0
    for r in (r for r in RENDERINGS if r.template == template):
        for channel in channels:
            subject, body = render(template, channel, r.context)
            where = (
                f"{template}.{channel} from {r.source}, {r.snapshot.kind} {r.snapshot.label}"
                f" [{r.snapshot.flags.label}], written {r.sent_on:%a %d %b %Y}"
            )
            check_letter(
                subject + "\n" + body,
                r.sent_on,
                placement_only=r.snapshot.flags.placement_only,
                where=where,
            )
            if channel == "sms":
                assert sms_segments(body) == 1, f"{where}: {len(body)} chars: {body!r}"
                assert all(sms_segments(ch * 71) == 1 for ch in body), f"not GSM-7: {where}"
                assert "Kai" not in body and "Jo" not in body.split(), where
                assert SETTINGS.service.helpline in body and r.context["reference"] in body
            checked += 1
    assert checked


# --- The checker itself ------------------------------------------------------------------------


def test_the_checker_catches_a_past_date_offered_to_meet() -> None:
    sent = D(2026, 5, 10)
    bad = [
        "Please let us know by Saturday 2 May 2026 whether you want mediation.",
        "Any appeal must reach the Tribunal by Tuesday 5 May 2026, 5pm.",
        "Subject: Reminder: appeal deadline Tuesday 5 May 2026, 5pm",
        "Certificate due Tuesday 5 May 2026.",
        "You have until 5 May 2026 to appeal.",
    ]
    for text in bad:
        with pytest.raises(AssertionError):
            check_letter(text, sent, placement_only=False, where="t")
    good = [
        "The 2-month limit passed on Saturday 2 May 2026. The Tribunal decides.",
        "It was due on Tuesday 5 May 2026 and has not been met.",
        "Any appeal must reach the Tribunal by Monday 11 May 2026, 5pm.",
        "decision sent 2 March 2026 + 2 months = 2 May 2026; later date: 14 May 2026",
    ]
    for text in good:
        check_letter(text, sent, placement_only=False, where="t")
    with pytest.raises(AssertionError, match="digits"):
        check_letter("due by 2026-05-11", sent, placement_only=False, where="t")
    with pytest.raises(AssertionError, match="weekday"):
        check_letter("by Monday 12 May 2026", sent, placement_only=False, where="t")
    for text in (
        "Without mediation, an appeal must reach the Tribunal by 30 September 2026.",
        "No certificate is needed.",
        "you do not need mediation advice or a certificate",
    ):
        with pytest.raises(AssertionError, match="no certificate"):
            check_letter(text, sent, placement_only=False, where="t")
        check_letter(text.replace("2026", "2027"), sent, placement_only=True, where="t")


# --- Focused rules -----------------------------------------------------------------------------


def _snap(label_start: str, flags: Flags = Flags(), state: str | None = None) -> Snapshot:
    for snap in mediation_snapshots(flags):
        if snap.label.startswith(label_start) and (state is None or snap.state == state):
            return snap
    raise LookupError(label_start)


def _letter(template: str, event: str, snap: Snapshot, channel: str = "email") -> str:
    subject, body = render(template, channel, event_context(event, snap))
    return subject + "\n" + body


def test_the_options_letter_says_a_certificate_is_needed_to_appeal() -> None:
    text = _letter("options_after_advice", "advise", _snap("advised"))
    assert "you need a mediation certificate to register an appeal" in text
    assert not NO_CERTIFICATE.search(text), text
    assert "Please let us know whether you want mediation by Saturday 2 May 2026." in text


def test_a_placement_only_family_is_not_asked_about_mediation_or_the_2_month_window() -> None:
    snap = _snap("advised", Flags(placement_only=True))
    for channel in ("email", "sms"):
        text = _letter("options_after_advice", "advise", snap, channel)
        assert "whether you want mediation" not in text, text
        assert "2-month limit" not in text and "Saturday 2 May 2026" not in text, text
        assert "certificate" in text
    email = _letter("options_after_advice", "advise", snap)
    assert "You can still choose mediation if you want it" in email
    assert (
        "Any appeal must reach the First-tier Tribunal (SEND) by Tuesday 5 May 2026, 5pm." in email
    )


def test_a_family_that_came_after_its_window_is_told_the_limit_passed_and_who_decides() -> None:
    late = Flags(late=True)
    for template, event, snap in (
        ("request_acknowledged", "open", _snap("requested", late)),
        ("options_after_advice", "advise", _snap("advised", late)),
        ("certificate_issued", "issue_certificate", _snap("certificate_issued (declined)", late)),
    ):
        text = _letter(template, event, snap)
        assert "the 2-month limit for telling a mediation adviser" in text.lower(), template
        assert "passed on Sunday 15 February 2026" in text, template
        assert "the Tribunal decides whether to accept a late appeal" in text, template
        assert "by Sunday 15 February 2026" not in text, template
    sms = _letter("options_after_advice", "advise", _snap("advised", late), "sms")
    assert "The 2-month limit passed on Sunday 15 February 2026" in sms


def test_the_adviser_sees_the_same_warning_on_the_case_page() -> None:
    snap = _snap("advised", Flags(late=True, reg32=False))
    facts = letters.facts_from(snap.case())
    warnings = letters.case_page_warnings(facts, snap.sent_on)
    assert any(
        "passed on Sunday 15 February 2026" in w and "Tribunal decides" in w for w in warnings
    )
    assert any("Tribunal may extend" in w for w in warnings)
    assert letters.case_page_warnings_for(snap.case(), snap.sent_on) == warnings
    on_time = letters.facts_from(_snap("advised").case())
    assert letters.case_page_warnings(on_time, ADVISED) == []
    # A family that said in time is not warned later, when the window is behind us.
    told = letters.facts_from(_snap("declined").case())
    assert letters.case_page_warnings(told, D(2026, 5, 20)) == []
    # A placement-only appeal has no reg 33 window to miss.
    exempt = letters.facts_from(_snap("advised", Flags(placement_only=True, late=True)).case())
    assert not any(
        "2-month limit to contact" in w for w in letters.case_page_warnings(exempt, ADVISED)
    )


def test_an_appeal_date_that_passed_is_reported_as_passed() -> None:
    snap = _snap("exempt, months later", Flags(placement_only=True))
    text = _letter("withdrawal_confirmed", "withdraw", snap)
    assert "passed on Tuesday 5 May 2026, 5pm" in text
    assert "the Tribunal decides whether to accept a late appeal" in text.replace(
        "The Tribunal", "the Tribunal"
    )


def test_withdrawal_and_closing_letters_say_the_appeal_deadline_still_runs_and_give_it() -> None:
    cert = _snap("certificate_issued (declined)")
    for template, event in (("withdrawal_confirmed", "withdraw"), ("case_closed", "close")):
        text = _letter(template, event, cert)
        assert "still runs" in text, template
        # Certificate 14 Apr + 1 month = 14 May 2026, later than 2 May (decision + 2 months).
        assert "by Thursday 14 May 2026, 5pm" in text, template
        sms = _letter(template, event, cert, "sms")
        assert "by Thursday 14 May 2026, 5pm" in sms, template
    # Before any certificate: the rule, the date from the decision, and a call.
    text = _letter("withdrawal_confirmed", "withdraw", _snap("mediating ("))
    assert "still runs" in text
    assert "the later of these dates: 2 months after the local authority's decision letter" in text
    assert "1 month after the date on the certificate" in text
    assert "Tuesday 5 May 2026, 5pm" in text and "Call us on 0161 209 8356" in text


def test_the_certificate_letter_says_what_it_is_and_how_the_date_was_worked_out() -> None:
    text = _letter("certificate_issued", "issue_certificate", _snap("certificate_issued (meeting)"))
    assert "It is dated Tuesday 14 April 2026." in text
    assert "It confirms that you took part in mediation." in text
    assert "You need it to register an appeal" in text
    assert (
        "Any appeal must reach the First-tier Tribunal (SEND) by Thursday 14 May 2026, 5pm." in text
    )
    assert (
        "How this date was worked out: decision sent 2 March 2026 + 2 months = 2 May 2026;"
        " certificate 14 April 2026 + 1 month = 14 May 2026; later date: 14 May 2026,"
        " so Thursday 14 May 2026, 5pm." in text
    )
    assert f"How to appeal, and the forms: {TRIBUNAL_GUIDANCE_URL}" in text
    declined = _letter(
        "certificate_issued", "issue_certificate", _snap("certificate_issued (declined)")
    )
    assert "decided not to go to mediation" in declined


def test_the_tribunal_guidance_url_comes_from_config() -> None:
    assert TRIBUNAL_GUIDANCE_URL.startswith("https://www.gov.uk/")
    settings = SETTINGS.model_copy(
        update={
            "service": SETTINGS.service.model_copy(
                update={"tribunal_guidance_url": "https://example.org/appeal"}
            )
        }
    )
    context = base_context(CaseFacts(1, "MED-2026-0001", "mediation", "requested", None), settings)
    assert context["tribunal_url"] == "https://example.org/appeal"


def test_when_the_decision_letter_lacked_the_reg_32_information_the_family_is_told() -> None:
    flags = Flags(reg32=False)
    for template, event, snap in (
        ("certificate_issued", "issue_certificate", _snap("certificate_issued (declined)", flags)),
        (
            "exempt_appeal_deadline",
            "mark_exempt",
            _snap("exempt", replace(flags, placement_only=True)),
        ),
    ):
        text = _letter(template, event, snap)
        assert "The Tribunal may extend the time for an appeal for that reason" in text, template
        plain = _letter(
            template,
            event,
            replace(
                snap,
                flags=Flags(placement_only=snap.flags.placement_only),
                fields=snap.fields | {"reg32_info_given": None},
            ),
        )
        assert "may extend" not in plain, template


def test_the_la_must_arrange_the_meeting_within_30_days() -> None:
    snap = _snap("mediating (")
    for template, event in (
        ("provider_allocated", "accept_allocation"),
        ("mediation_chosen", "choose_mediation"),
    ):
        text = _letter(template, event, snap)
        assert (
            "The local authority must take part and must arrange the mediation meeting"
            " within 30 days" in text
        )
        # Told Fri 20 Mar 2026 + 30 days = Sun 19 Apr 2026.
        assert (
            "It was told on Friday 20 March 2026, so the meeting must take place"
            " by Sunday 19 April 2026." in text
        )
        assert "should" not in text, template


def test_health_only_the_icb_must_arrange_it_from_the_day_it_was_told() -> None:
    flags = Flags(health="health_only")
    told = _letter(
        "mediation_chosen", "record_icb_told", _snap("mediating (ICB told: True)", flags)
    )
    assert "the NHS Integrated Care Board (ICB) has now been told" in told.replace(
        "The NHS", "the NHS"
    )
    assert "must arrange the mediation meeting within 30 days of the day it was told" in told
    # ICB told Tue 24 Mar 2026 + 30 days = Thu 23 Apr 2026.
    assert (
        "It was told on Tuesday 24 March 2026, so the meeting must take place"
        " by Thursday 23 April 2026." in told
    )
    waiting = _letter(
        "mediation_chosen", "choose_mediation", _snap("mediating (ICB told: False)", flags)
    )
    # LA told Fri 20 Mar + 3 working days = Wed 25 Mar 2026.
    assert (
        "The local authority must tell it within 3 working days, by Wednesday 25 March 2026"
        in waiting
    )
    assert "must take place by" not in waiting  # no date is invented before the ICB is told
    named = event_context("record_icb_told", _snap("mediating (ICB told: True)", flags))
    named["icb_name"] = "NHS Greater Manchester Integrated Care Board"
    _, body = render("mediation_chosen", "email", named)
    assert "NHS Greater Manchester Integrated Care Board has now been told" in body


def test_the_icb_told_notice_goes_only_in_health_only_cases() -> None:
    from casework.notices import _notice_applies

    (rule,) = [r for r in RULES.events if r.event == "record_icb_told"]
    for health_only, expected in ((True, True), (False, False)):
        ctx = SimpleNamespace(case=SimpleNamespace(health_only=health_only), data={})
        assert _notice_applies(rule, ctx) is expected


def test_after_mediation_the_family_is_told_what_was_agreed_and_by_when() -> None:
    snap = _snap("meeting held", Flags(health="health_only"))
    text = _letter("agreement_recorded", "add_agreement_item", snap)
    assert (
        "What was agreed at mediation on Friday 10 April 2026, who must act, and by when:" in text
    )
    assert (
        "- The LA will carry out the EHC needs assessment: the local authority must do this"
        " by Friday 24 April 2026." in text
    )
    # Agreed for a day already gone when the letter is written: reported as passed.
    assert (
        "- A speech and language review this term: the NHS Integrated Care Board (ICB) had to do"
        " this, and the date for it passed on Friday 10 April 2026." in text
    )
    assert "- A meeting with the school: done." in text
    # Health-only: the ICB tells the LA within 1 week of the meeting (Fri 17 Apr).
    assert "must tell it what was agreed by Friday 17 April 2026." in text


def test_after_a_deemed_certificate_and_a_meeting_the_safe_date_stays() -> None:
    snap = _snap("certificate_issued (deemed+second)")
    text = _letter("certificate_issued", "issue_certificate", snap)
    assert "We have issued a second mediation certificate, dated Tuesday 5 May 2026" in text
    # First certificate Wed 22 Apr + 1 month = Fri 22 May 2026 (later than 2 May): the safe date.
    assert (
        "Any appeal must reach the First-tier Tribunal (SEND) by Friday 22 May 2026, 5pm." in text
    )
    assert "certificate 22 April 2026 + 1 month = 22 May 2026" in text
    # Second certificate Tue 5 May + 1 month = Fri 5 Jun 2026: possible, not promised.
    assert "The later certificate may give a later appeal date, Friday 5 June 2026, 5pm," in text
    assert "only the Tribunal can confirm that" in text
    assert (
        "To be safe, make sure your appeal reaches the Tribunal by Friday 22 May 2026, 5pm" in text
    )
    sms = _letter("certificate_issued", "issue_certificate", snap, "sms")
    assert "2nd certificate" in sms and "To be safe" in sms and "22 May 2026" in sms
    # Before the second certificate: the meeting happened, the later date is only possible.
    before = _letter(
        "withdrawal_confirmed", "withdraw", _snap("certificate_issued (deemed+meeting)")
    )
    assert "The mediator will issue a second certificate" in before
    assert "only the Tribunal can confirm" in before
    warnings = letters.case_page_warnings(letters.facts_from(snap.case()), SECOND_CERTIFICATE)
    assert any("Friday 5 June 2026" in w and "only the Tribunal can confirm" in w for w in warnings)


def test_a_deemed_certificate_says_the_meeting_may_still_happen() -> None:
    text = _letter("certificate_issued", "issue_certificate", _snap("certificate_issued (deemed)"))
    assert "could not be arranged within 30 days" in text
    assert "The meeting may still take place" in text and "only the Tribunal can confirm" in text


def test_a_missed_clock_is_never_written_as_due_by_a_past_day() -> None:
    snap = _snap("mediating (")
    rule = next(
        r for r in RULES.reminders["mediation_meeting"] if r.template == "escalation_missed"
    )
    context, _ = reminder_context("mediation_meeting", rule, snap)
    assert context["due_passed"] is True
    _, body = render("escalation_missed", "email", context)
    assert "was due on" in body and "due by" not in body
    # An escalation that would normally go before the due day, sent late, says so too.
    near, _ = reminder_context(
        "contact_adviser",
        next(r for r in RULES.reminders["contact_adviser"] if r.template == "escalation_near"),
        _snap("advised"),
    )
    late = near | {"due_passed": True}
    _, body = render("escalation_near", "email", late)
    assert "was due on" in body and "is due by" not in body


def test_letter_context_reads_the_first_certificate_and_the_event_date() -> None:
    # The event's own date wins over the case row (a back-dated choice).
    case = _snap("advised").case()
    facts = letters.facts_from(case, {"chose_on": "2026-03-19", "la_told_on": D(2026, 3, 19)})
    assert facts.chose_on == D(2026, 3, 19) and facts.la_told_on == D(2026, 3, 19)
    ctx = letters.letter_context(facts, D(2026, 3, 20))
    assert ctx["chose_text"] == "Thursday 19 March 2026"
    assert ctx["meeting_limit_text"] == "Saturday 18 April 2026"
    assert ctx["window_passed"] is False


def test_the_working_ends_with_the_date_once_and_never_as_a_date_to_meet() -> None:
    rolled = dl.appeal_clock(LATE_DECISION).explanation  # 15 Feb 2026 is a Sunday
    assert rolled.endswith("appeal must reach the Tribunal by Monday 16 February 2026, 5pm")
    assert letters.appeal_working(rolled) == (
        "decision sent 15 December 2025 + 2 months = 15 February 2026; 15 February 2026 is not"
        " a working day (Sunday), so Monday 16 February 2026, 5pm"
    )
    plain = dl.appeal_clock(ON_TIME_DECISION, CERTIFICATE).explanation
    assert letters.appeal_working(plain).endswith(
        "later date: 14 May 2026, so Thursday 14 May 2026, 5pm"
    )
    assert letters.appeal_working("worked out by hand") == "worked out by hand"
