"""Correcting the family's contact: re-validated, audited old and new, queued notices follow."""

from __future__ import annotations

import pytest
from sqlmodel import Session, col, select

from casework import cases
from casework.config import Settings
from casework.models import Case, Notice, NoticeStatus
from tests.conftest import ADVISER, at
from tests.factories import create_case

PROVIDER = cases.Actor(id="user:kim@x.example.org", role="provider", channel="portal")


def queued_family(session: Session, case: Case) -> list[Notice]:
    return list(
        session.execute(
            select(Notice)
            .where(
                col(Notice.case_id) == case.id,
                col(Notice.recipient_role) == "family",
            )
            .order_by(col(Notice.id))
        ).scalars()
    )


def test_a_new_phone_is_normalised_audited_and_used_by_notices_not_yet_sent(
    session: Session, settings: Settings
) -> None:
    case = create_case(session, settings)
    version = case.version
    before = queued_family(session, case)
    assert any(n.channel == "sms" and n.status == NoticeStatus.queued for n in before), before
    family = cases.update_contact(
        session,
        case.reference,
        phone="07911 123456",
        reason="The family gave a new number on the phone",
        now=at("2026-11-10"),
        actor=ADVISER,
    )
    assert family.phone == "+447911123456"
    for notice in queued_family(session, case):
        if notice.channel == "sms" and notice.status == NoticeStatus.queued:
            assert notice.to_address == "+447911123456"
    last = cases.case_events(session, cases.get_case(session, case.reference))[-1]
    assert last.event == "update_contact" and last.actor == ADVISER.id
    assert last.note == "The family gave a new number on the phone"
    assert last.data["phone"] == "+447911123456"
    assert last.data["phone_was"] not in ("", "+447911123456")
    assert "name" not in last.data  # only what changed
    assert cases.get_case(session, case.reference).version == version + 1
    words = dict(cases.event_details(case.kind, "update_contact", last.data))
    assert words["Telephone number"] == "+447911123456"
    assert cases.event_label("update_contact") == "Family contact corrected"


def test_withdrawn_sms_consent_moves_waiting_texts_to_email_or_skips_them(
    session: Session, settings: Settings
) -> None:
    case = create_case(session, settings)
    queued = [n for n in queued_family(session, case) if n.status == NoticeStatus.queued]
    assert {n.channel for n in queued} == {"sms", "email"}, queued
    cases.update_contact(
        session,
        case.reference,
        sms_consent=False,
        reason="Mother asked for no texts",
        now=at("2026-11-10"),
        actor=ADVISER,
    )
    # The same message was waiting by email too: the text is skipped, saying why.
    assert [(n.channel, n.status) for n in queued_family(session, case)] == [
        ("sms", NoticeStatus.skipped),
        ("email", NoticeStatus.queued),
    ]
    skipped = queued_family(session, case)[0]
    assert "contact details were changed" in skipped.last_error
    last = cases.case_events(session, cases.get_case(session, case.reference))[-1]
    assert (last.data["sms_consent"], last.data["sms_consent_was"]) == ("withdrawn", "given")
    assert last.data["notices_readdressed"] >= 1


def test_a_text_with_no_email_twin_moves_to_email(session: Session, settings: Settings) -> None:
    case = create_case(session, settings, preferred_channels="sms")
    assert [(n.channel, n.status) for n in queued_family(session, case)] == [
        ("sms", NoticeStatus.queued)
    ]
    cases.update_contact(
        session,
        case.reference,
        sms_consent=False,
        preferred_channels="email",
        reason="No mobile any more",
        now=at("2026-11-10"),
        actor=ADVISER,
    )
    assert [(n.channel, n.status, n.to_address) for n in queued_family(session, case)] == [
        ("email", NoticeStatus.queued, "jo.family@example.org")
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"phone": "0161 12"}, "phone"),
        ({"phone": ""}, "phone"),
        ({"email": "jo@"}, "email"),
        ({"name": "  "}, "name"),
        ({"preferred_channels": "pigeon"}, "preferred_channels"),
        ({"preferred_channels": "email", "email": ""}, "email"),
        ({"name": "Jo Family"}, None),  # nothing changes
        ({"name": "Jo Smith", "reason": ""}, "reason"),
    ],
    ids=[
        "bad-phone",
        "no-phone",
        "bad-email",
        "no-name",
        "bad-channel",
        "email-only-without-address",
        "no-change",
        "no-reason",
    ],
)
def test_a_correction_is_checked_like_intake(
    session: Session, settings: Settings, change: dict[str, str], field: str | None
) -> None:
    case = create_case(session, settings)
    kwargs: dict[str, str] = {"reason": "corrected on the phone", **change}
    with pytest.raises(cases.ValidationFailed) as refused:
        cases.update_contact(session, case.reference, now=at("2026-11-10"), actor=ADVISER, **kwargs)
    assert refused.value.field == field
    assert cases.family_of(session, cases.get_case(session, case.reference)).name == "Jo Family"  # type: ignore[union-attr]


def test_provider_staff_cannot_correct_the_contact(session: Session, settings: Settings) -> None:
    case = create_case(session, settings)
    with pytest.raises((cases.NotFound, cases.NotPermitted)):
        cases.update_contact(
            session,
            case.reference,
            name="Someone Else",
            reason="x",
            now=at("2026-11-10"),
            actor=PROVIDER,
        )
    commissioner = cases.Actor(id="user:c@x.example.org", role="commissioner")
    with pytest.raises(cases.NotPermitted):
        cases.update_contact(
            session,
            case.reference,
            name="Someone Else",
            reason="x",
            now=at("2026-11-10"),
            actor=commissioner,
        )
