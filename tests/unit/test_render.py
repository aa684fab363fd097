"""Notice templates: each renders with the context casework really builds, SMS stay short.

Contexts are built the way the code that queues notices builds them
(``notices.base_context`` + ``deadline_context`` for reminders and escalations,
``notices._event_context`` for event notices, the keys ``dispatch.escalate_failure``
and ``reminders.queue_digest`` add for theirs), with the longest realistic values: the
longest date a family can be shown ("Wednesday 30 September 2026", from an LA decision
sent on 30 July 2026), IAS Manchester's name and helpline, a full case reference and
the provider with the longest name. Every SMS is checked for its segment count (shown
in the test id), for GSM-7 only characters, and for what it must never carry: the
family's or child's name, the LA decision, the case summary, links or explanations.
"""

from __future__ import annotations

import datetime as dt
import re
from types import SimpleNamespace
from typing import Any

import pytest

from casework import deadlines as dl
from casework.config import Settings, load_settings
from casework.models import Case, Deadline
from casework.notices import (
    DEADLINE_LABELS,
    CaseFacts,
    FamilyContact,
    NoticeRules,
    _event_context,
    base_context,
    deadline_context,
)
from casework.notify.escalate import credential_alarm_row
from casework.notify.render import RenderError, render, sms_segments, templates_available

D = dt.date
REFERENCE = "MED-2026-0042"
FAMILY_NAME = "Jo Whitfield-Okonkwo"  # the first name, "Jo", is what templates may use
CHILD_NAME = "Kai Whitfield-Okonkwo"
SUMMARY = "Autistic son; LA refused an EHC needs assessment; school is Oakwood High"
DECISION_TYPE = "refuse_assessment"
DECISION = D(2026, 7, 30)  # + 2 months = Wednesday 30 September 2026
LONGEST_DAY = D(2026, 9, 30)
LONGEST_DATE = "Wednesday 30 September 2026"
SENT_AT = dt.datetime(2026, 8, 20, 10, tzinfo=dt.UTC)


def _load_settings() -> Settings:
    return load_settings(environment="test", public_url="https://casework.example.org")


SETTINGS = _load_settings()
RULES = NoticeRules.from_settings(SETTINGS)


def facts(*, kind: str = "mediation", family_name: str = FAMILY_NAME) -> CaseFacts:
    return CaseFacts(
        case_id=42,
        reference=REFERENCE if kind == "mediation" else "DR-2026-0042",
        kind=kind,
        state="mediating",
        family=FamilyContact(
            family_name, "+447911123456", "jo@example.org", ("sms", "email"), True
        ),
        provider_name="Link Mediation Ltd",
        provider_email="referrals@link-mediation.example.org",
        adviser_email=None,
    )


# --- Contexts as the code builds them ----------------------------------------------------

# A real clock (due date, citation, explanation) for each deadline kind, each due on the
# longest date where the rule allows it, so explanations are as long as they get.
_CLOCKS: dict[str, dl.Clock] = {
    "contact_adviser": dl.contact_adviser_deadline(DECISION),
    "certificate_after_decline": dl.certificate_after_decline(D(2026, 9, 25)),
    "icb_notified": dl.icb_notification_deadline(D(2026, 9, 25)),
    "mediation_meeting": dl.mediation_meeting_deadline(D(2026, 8, 31)),
    "certificate_not_arranged": dl.certificate_not_arranged(D(2026, 9, 25)),
    "certificate_after_meeting": dl.certificate_after_meeting(D(2026, 9, 25)),
    "agreement_implemented": dl.agreement_implementation(D(2026, 9, 16)),
    "icb_tells_la_of_agreement": dl.icb_tells_la_of_agreement(D(2026, 9, 23)),
    "appeal": dl.appeal_clock(DECISION, D(2026, 8, 20)),
    "scheduled_meeting": dl.Clock(
        dl.DeadlineKind.scheduled_meeting,
        LONGEST_DAY,
        "meeting arranged by the provider",
        f"meeting arranged for {LONGEST_DATE} at 10:00",
    ),
    "dr_advice": dl.service_target(dl.DeadlineKind.dr_advice, D(2026, 9, 23), 5, "request"),
    "dr_allocation": dl.service_target(dl.DeadlineKind.dr_allocation, D(2026, 9, 23), 5, "x"),
    "dr_meeting": dl.service_target(dl.DeadlineKind.dr_meeting, D(2026, 9, 2), 20, "allocated"),
    "allocation_acceptance": dl.service_target(
        dl.DeadlineKind.allocation_acceptance, D(2026, 9, 28), 2, "allocated to Link Mediation"
    ),
    "data_request": dl.data_request_deadline(D(2026, 8, 30)),
}


def test_the_sample_clocks_fall_on_the_longest_date() -> None:
    # Guards the fixture above: if a rule changed, the "longest value" claim would be void.
    for kind, clock in _CLOCKS.items():
        assert clock.due == LONGEST_DAY, kind
    assert dl.fmt(LONGEST_DAY) == LONGEST_DATE


def deadline_notice_context(kind: str, rule_id: str, notice_kind: str, **fact_kw: Any) -> dict:
    clock = _CLOCKS[kind]
    return (
        base_context(facts(**fact_kw), SETTINGS)
        | deadline_context(kind, clock.due, clock.explanation, clock.citation)
        | {"notice_kind": notice_kind, "rule": rule_id}
    )


def event_notice_context(event: str, only_when: str | None = None, **fact_kw: Any) -> dict:
    """What ``queue_event_notices`` stores for ``event`` on a case at the matching step
    (a rule ``only_when = "meeting_cancelled"`` goes out only when the step cancelled one)."""
    kind = fact_kw.get("kind", "mediation")
    case = Case(
        id=42,
        reference=REFERENCE,
        kind=kind,
        state="mediating",
        intake_channel="helpline",
        opened_at=dt.datetime(2026, 8, 3, 9, tzinfo=dt.UTC),
        updated_at=dt.datetime(2026, 8, 3, 9, tzinfo=dt.UTC),
        decision_date=DECISION if kind == "mediation" else None,
        child_name=CHILD_NAME,
        summary=SUMMARY,
        decision_type=DECISION_TYPE,
    )
    opened: list[Deadline] = []
    if event == "schedule_meeting":
        case.meeting_on, case.meeting_time = LONGEST_DAY, "10:00"
    if event in ("issue_certificate", "mark_exempt"):
        clock = _CLOCKS["appeal"] if event == "issue_certificate" else dl.appeal_clock(DECISION)
        case.appeal_due = clock.due
        opened.append(
            Deadline(
                kind=clock.kind,
                due_date=clock.due,
                due_at=clock.due_at(),
                citation=clock.citation,
                explanation=clock.explanation,
                opened_at=case.opened_at,
            )
        )
    ctx = SimpleNamespace(
        case=case,
        event=event,
        opened=opened,
        data={"reason": "The family and the school agreed a plan; no appeal needed"}
        | (
            {"cancelled_meeting_on": LONGEST_DAY.isoformat()}
            if event == "cancel_meeting" or only_when == "meeting_cancelled"
            else {}
        ),
        now=SENT_AT,  # the certificate's day: every date above is still ahead
        settings=SETTINGS,
    )
    return base_context(facts(**fact_kw), SETTINGS) | _event_context(ctx) | {"notice_kind": "event"}


def delivery_failed_context() -> dict:
    """``escalate.delivery_failed_row``: the failed notice's context plus why it failed."""
    return deadline_notice_context("appeal", "appeal-7d-family", "reminder") | {
        "notice_kind": "escalation",
        "failed_channel": "sms",
        "failed_template": "family_appeal_reminder",
        "failed_recipient": "family",
        "reason": "Twilio says the phone number is not valid (21211)",
    }


def digest_context() -> dict:
    """``reminders.queue_digest``'s context."""
    line = f"{REFERENCE}: {DEADLINE_LABELS['certificate_after_meeting']}, due {LONGEST_DATE}"
    return {
        "notice_kind": "digest",
        "reference": "",
        "service_name": SETTINGS.service.name,
        "date_text": LONGEST_DATE,
        "late": [line],
        "due_today": [],
        "soon": [line, line],
        "soon_days": 3,
        "truncated": True,
        "dashboard_link": "https://casework.example.org/",
    }


def monthly_report_context() -> dict:
    """``reports.monthly.queue_monthly_report``'s context (suppressed, as commissioners see)."""
    return {
        "notice_kind": "report",
        "reference": "",
        "service_name": SETTINGS.service.name,
        "month_text": "December 2026",
        "clocks_due": "1,204",
        "on_time": "fewer than 5",
        "percent_on_time": "withheld (fewer than 5)",
        "year_text": "2026",
        "held_so_far": "312",
        "appeals_so_far": "41",
        "csv_link": "https://casework.example.org/reports/download/figures.csv?from=2026-12-01",
        "reports_link": "https://casework.example.org/reports?from=2026-12-01&to=2026-12-31",
    }


def family_code_context() -> dict:
    """``cases.family.request_code``: the service's name, the code and its minutes, nothing else.

    ``reference`` is empty: the code message must not carry the case reference.
    """
    return {
        "notice_kind": "code",
        "reference": "",
        "service_name": SETTINGS.service.name,
        "code": "493027",
        "minutes": 10,
    }


def opted_out_context(next_channel: str) -> dict:
    """``cases.family.apply_sms_opt_outs``: the adviser's alert after the family replied STOP."""
    return {
        "notice_kind": "escalation",
        "reference": REFERENCE,
        "case_link": f"https://casework.example.org/cases/{REFERENCE}",
        "next_channel": next_channel,
        "service_name": SETTINGS.service.name,
    }


# Events a disagreement-resolution case can have (states.DisagreementFlow + allocation).
DISAGREEMENT_EVENTS = {
    "open",
    "advise",
    "allocate_provider",
    "decline_allocation",
    "schedule_meeting",
    "cancel_meeting",
    "withdraw",
}


def contexts_for(name: str) -> list[tuple[str, dict]]:
    """Every context a template is rendered with in casework, labelled by where from."""
    found: list[tuple[str, dict]] = []
    for kind, rules in RULES.reminders.items():
        for rule in rules:
            if rule.template == name:
                ctx = deadline_notice_context(kind, rule.id, rule.kind)
                found.append((f"rule {rule.id}", ctx))
    for rule in RULES.events:
        if rule.template == name:
            for case_kind in ("mediation", "disagreement"):
                if rule.case_kind not in (None, case_kind):
                    continue
                if case_kind == "disagreement" and rule.event not in DISAGREEMENT_EVENTS:
                    continue
                ctx = event_notice_context(rule.event, rule.only_when, kind=case_kind)
                found.append((f"event {rule.event} ({case_kind})", ctx))
    if name == "escalation_delivery_failed":
        found.append(("escalate.delivery_failed_row", delivery_failed_context()))
    if name == "escalation_credentials_rejected":
        for provider, channel in (("sendgrid", "email"), ("twilio", "sms")):
            row = credential_alarm_row(
                provider,
                channel,
                1,
                dt.datetime(2026, 11, 9, 10, tzinfo=dt.UTC),
                "Twilio refused our account credentials (401/20003): Authenticate",
                SETTINGS,
            )
            found.append((f"escalate.credential_alarm_row ({provider})", row["context"]))
    if name == "family_code":
        found.append(("cases.family.request_code", family_code_context()))
    if name == "family_opted_out":
        for next_channel in ("email", ""):
            found.append(
                (
                    f"cases.family.apply_sms_opt_outs ({next_channel or 'none'})",
                    opted_out_context(next_channel),
                )
            )
    if name == "one_off_message":
        # The adviser's own words, on the case's usual letterhead (cases.messages).
        ctx = event_notice_context("advise") | {
            "message_text": "Please call me back about the meeting next week.",
            "notice_kind": "message",
        }
        found.append(("cases.messages.send_message", ctx))
    if name == "daily_digest":
        found.append(("reminders.queue_digest", digest_context()))
    if name == "monthly_report":
        found.append(("reports.monthly.queue_monthly_report", monthly_report_context()))
    return found


def is_gsm7(ch: str) -> bool:
    """71 GSM-7 characters fit one part (even extension ones: 142 septets); 71 UCS-2 do not."""
    return sms_segments(ch * 71) == 1


ALL = sorted(templates_available())
SMS = sorted(name for name, channel in ALL if channel == "sms")


def _segments_id(name: str) -> str:
    try:
        worst = max(sms_segments(render(name, "sms", c)[1]) for _, c in contexts_for(name))
    except (RenderError, ValueError):
        return f"{name}.sms-does-not-render"
    return f"{name}.sms-{worst}-segment{'s' if worst > 1 else ''}"


# --- Every template renders --------------------------------------------------------------


@pytest.mark.parametrize(("name", "channel"), ALL, ids=[f"{n}.{c}" for n, c in ALL])
def test_every_template_renders_with_the_contexts_casework_gives_it(
    name: str, channel: str
) -> None:
    sources = contexts_for(name)
    assert sources, f"{name}.{channel}.j2 is used by no rule, event or code path (orphan?)"
    for source, ctx in sources:
        subject, body = render(name, channel, ctx)
        where = f"{name}.{channel} from {source}"
        assert "{{" not in body and "{%" not in body, where
        assert body.strip(), where
        if name != "daily_digest":
            assert ctx["reference"] in body, where
        if channel == "email":
            assert subject and "\n" not in subject, where
            assert len(subject) <= 300, where  # the notices.subject column
            assert body.endswith("\n") and not body.startswith("\n"), where
        else:
            assert subject == ""


@pytest.mark.parametrize("name", SMS, ids=[_segments_id(n) for n in SMS])
def test_every_sms_is_one_gsm7_segment_with_the_longest_values(name: str) -> None:
    for source, ctx in contexts_for(name):
        _, body = render(name, "sms", ctx)
        non_gsm = sorted({ch for ch in body if not is_gsm7(ch)})
        assert not non_gsm, f"{name} from {source}: not GSM-7: {non_gsm!r} in {body!r}"
        segments = sms_segments(body)
        print(f"{name}.sms: {segments} segment(s), {len(body)} chars: {body}")
        assert segments <= 2, f"{name}: {segments} segments: {body!r}"
        assert segments == 1, f"{name} costs {segments} segments ({len(body)} chars): {body!r}"


@pytest.mark.parametrize("name", SMS)
def test_an_sms_carries_only_the_reference_dates_and_the_call_back_number(name: str) -> None:
    for source, ctx in contexts_for(name):
        ctx = ctx | {
            "family_name": "Jo",
            "child_name": CHILD_NAME,
            "summary": SUMMARY,
            "decision_type": DECISION_TYPE,
        }
        _, body = render(name, "sms", ctx)
        where = f"{name} from {source}: {body!r}"
        if name == "family_code":
            # A code says nothing of the case: not even its reference or the helpline.
            assert REFERENCE not in body and ctx["code"] in body, where
            assert "http" not in body and "@" not in body, where
            continue
        assert not re.search(r"\bJo\b", body), where
        for forbidden in ("Kai", "Whitfield", "Okonkwo", "Oakwood", "EHC", "assessment"):
            assert forbidden not in body, where
        assert "refuse" not in body.lower() and "autis" not in body.lower(), where
        assert "http" not in body and "@" not in body, where  # no links, no addresses
        for key in ("explanation", "appeal_explanation", "citation", "deadline_label"):
            if ctx.get(key):
                assert str(ctx[key]) not in body, f"{key} leaked: {where}"
        assert SETTINGS.service.helpline in body, f"no call-back number: {where}"
        assert ctx["reference"] in body, f"no reference: {where}"


def test_an_email_never_names_the_child_or_the_decision() -> None:
    for name, channel in ALL:
        if channel != "email":
            continue
        for source, ctx in contexts_for(name):
            ctx = ctx | {"child_name": CHILD_NAME, "summary": SUMMARY}
            subject, body = render(name, channel, ctx)
            text = subject + body
            assert "Kai" not in text and "Oakwood" not in text, f"{name} from {source}"


def test_the_family_email_greets_by_first_name_only() -> None:
    _, body = render("certificate_issued", "email", event_notice_context("issue_certificate"))
    assert body.startswith("Dear Jo,\n")
    assert "Whitfield" not in body
    assert f"{LONGEST_DATE}, 5pm" in body  # the appeal deadline with its time
    assert "decision sent 30 July 2026 + 2 months" in body  # and how it was worked out


def test_a_disagreement_family_is_not_told_about_mediations_30_day_clock() -> None:
    # Disagreement resolution has no statutory clock (domain.md); the allocation
    # notice must not promise a meeting "within 30 days" of the LA being told.
    ctx = event_notice_context("allocate_provider", kind="disagreement")
    for channel in ("sms", "email"):
        _, body = render("provider_allocated", channel, ctx)
        assert "30 days" not in body and "want mediation" not in body, body


def test_advice_renders_before_the_decision_date_is_known() -> None:
    # A mediation request can be opened without the LA's decision date (it is often
    # learnt on the call-back). The family must still get the options after advice;
    # a RenderError here fails both notices at dispatch and the family hears nothing.
    ctx = event_notice_context("advise")
    for key in ("window_text", "appeal_window_text", "appeal_window_passed", "decision_text"):
        ctx.pop(key)  # as _event_context leaves it without a decision date
    for channel in ("sms", "email"):
        _, body = render("options_after_advice", channel, ctx)
        assert "whether you want mediation" in body
        assert SETTINGS.service.helpline in body


# --- Config and templates agree -----------------------------------------------------------


def test_every_template_in_config_exists_for_each_of_its_channels() -> None:
    available = templates_available()
    wanted = {
        (r.template, c) for rules in RULES.reminders.values() for r in rules for c in r.channels
    }
    wanted |= {(r.template, c) for r in RULES.events for c in r.channels}
    wanted |= {("escalation_delivery_failed", "email")}  # escalate.delivery_failed_row
    wanted |= {("escalation_credentials_rejected", "email")}  # escalate.credential_alarm_row
    missing = sorted(wanted - available)
    assert not missing, f"configured but no template file: {missing}"


def test_every_reminder_rule_names_a_known_deadline_kind() -> None:
    kinds = {k.value for k in dl.DeadlineKind}
    assert set(RULES.reminders) <= kinds
    assert set(DEADLINE_LABELS) == kinds


# --- Errors --------------------------------------------------------------------------------


def test_a_missing_variable_is_an_error_not_a_blank() -> None:
    ctx = deadline_notice_context("appeal", "appeal-7d-family", "reminder")
    del ctx["due_text"]
    with pytest.raises(RenderError, match="due_text"):
        render("family_appeal_reminder", "sms", ctx)
    with pytest.raises(RenderError, match="due_text"):
        render("family_appeal_reminder", "email", ctx)


def test_an_unknown_template_or_channel_is_an_error() -> None:
    ctx = deadline_notice_context("appeal", "appeal-7d-family", "reminder")
    with pytest.raises(RenderError, match="no sms template"):
        render("no_such_template", "sms", ctx)
    with pytest.raises(RenderError):
        render("allocation_notice", "sms", ctx)  # provider notices are email only


def test_sms_whitespace_is_collapsed_to_one_line() -> None:
    _, body = render(
        "family_appeal_reminder", "sms", deadline_notice_context("appeal", "x", "reminder")
    )
    assert "\n" not in body and "  " not in body and body == body.strip()


# --- Segment counting ------------------------------------------------------------------------


SEGMENT_CASES = {
    "empty": ("", 1),
    "gsm-160": ("a" * 160, 1),  # GSM-7: 160 septets in one part
    "gsm-161": ("a" * 161, 2),  # then 153 per part
    "gsm-306": ("a" * 306, 2),
    "gsm-307": ("a" * 307, 3),
    "pound-160": ("£" * 160, 1),  # £ is in the basic GSM set
    "euro-80": ("€" * 80, 1),  # the extension table costs two septets: 160
    "euro-81": ("€" * 81, 2),  # 162 septets
    "gsm-159+bracket": ("a" * 159 + "[", 2),  # 161 septets
    "ucs2-70": ("\u2019" * 70, 1),  # UCS-2: 70 in one part
    "ucs2-71": ("\u2019" * 71, 2),  # then 67 per part
    "ucs2-134": ("\u2019" * 134, 2),
    "ucs2-135": ("\u2019" * 135, 3),
    "69+curly-quote": ("a" * 69 + "\u2019", 1),
    "70+curly-quote": ("a" * 70 + "\u2019", 2),  # one curly quote: 71 UCS-2 units
    "120+curly-quote": ("a" * 120 + "\u2019", 2),  # 1 part in GSM-7, 2 with the quote
    "120+nbsp": ("a" * 120 + "\u00a0", 2),  # a non-breaking space does the same
    "69+emoji": ("a" * 69 + "\U0001f600", 2),  # an emoji is two UTF-16 units
}


@pytest.mark.parametrize(("text", "segments"), SEGMENT_CASES.values(), ids=SEGMENT_CASES.keys())
def test_sms_segments(text: str, segments: int) -> None:
    assert sms_segments(text) == segments


# --- The family page's link ----------------------------------------------------------------

FAMILY_LINK = "https://casework.example.org/family/" + "x" * 32
FAMILY_TEMPLATES = sorted(
    {r.template for r in RULES.events if r.recipient == "family"}
    | {r.template for rules in RULES.reminders.values() for r in rules if r.recipient == "family"}
)


@pytest.mark.parametrize("name", FAMILY_TEMPLATES)
def test_every_family_notice_carries_the_link_to_its_page(name: str) -> None:
    """The dispatcher adds ``family_link``; every family template prints it on every channel.

    A text with the link stays GSM-7 and at most two parts; without it, one (above).
    """
    channels = [c for n, c in ALL if n == name]
    for source, ctx in contexts_for(name):
        for channel in channels:
            _, body = render(name, channel, ctx | {"family_link": FAMILY_LINK})
            assert FAMILY_LINK in body, f"{name}.{channel} from {source}"
            if channel == "sms":
                assert sms_segments(body) <= 2, f"{name} from {source}: {body!r}"
                assert all(is_gsm7(ch) for ch in body), body
            # Without a link (revoked, none issued) nothing is left dangling.
            _, plain = render(name, channel, ctx)
            assert "/family/" not in plain and "own page" not in plain


def test_the_code_message_carries_the_code_and_nothing_of_the_case() -> None:
    ctx = family_code_context()
    subject, body = render("family_code", "email", ctx)
    assert "493027" in body and "10 minutes" in body
    assert REFERENCE not in subject + body and "mediation" not in (subject + body).lower()
    _, text = render("family_code", "sms", ctx)
    assert "493027" in text and sms_segments(text) == 1
