"""The family is told which provider will run mediation only once that provider accepts.

Collis is offered the case and declines; Link is offered it; the family chooses
mediation while Link has not answered yet; then Link accepts. Every message the
family is sent, as rendered, names a provider exactly once between them: Link,
in the message sent when Link accepted. Collis is never named to the family.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session, col

from casework import cases
from casework.config import Settings
from casework.models import Notice, Provider
from casework.notify.render import render
from tests.conftest import at
from tests.factories import advance, allocate_to, create_case


def _provider_actor(session: Session, code: str) -> cases.Actor:
    provider = session.execute(select(Provider).where(col(Provider.code) == code)).scalar_one()
    return cases.Actor(
        id=f"user:staff@{code}.example.org",
        role="provider",
        channel="portal",
        provider_id=provider.id,
    )


def test_a_refused_then_reallocated_case_names_only_the_provider_that_accepted(
    session: Session, settings: Settings
) -> None:
    case = create_case(session, settings)
    ref = case.reference
    advance(session, settings, case, "advise", now=at("2026-11-10"))
    allocate_to(session, ref, "collis", now=at("2026-11-10", "11:00"), settings=settings)
    cases.respond_to_allocation(
        session,
        ref,
        accept=False,
        now=at("2026-11-10", "12:00"),
        actor=_provider_actor(session, "collis"),
        settings=settings,
        note="No mediator free until January",
    )
    allocate_to(session, ref, "link", now=at("2026-11-10", "13:00"), settings=settings)
    # The family chooses mediation while Link has not answered: nobody is named yet.
    advance(
        session,
        settings,
        cases.get_case(session, ref),
        "choose_mediation",
        now=at("2026-11-11"),
        la_told_on="2026-11-11",
    )
    cases.respond_to_allocation(
        session,
        ref,
        accept=True,
        now=at("2026-11-11", "15:00"),
        actor=_provider_actor(session, "link"),
        settings=settings,
    )

    family = list(
        session.execute(
            select(Notice)
            .where(col(Notice.case_id) == case.id, col(Notice.recipient_role) == "family")
            .order_by(col(Notice.id))
        ).scalars()
    )
    texts = {
        (n.template, n.channel): " ".join(render(n.template, n.channel, dict(n.context)))
        for n in family
    }
    assert ("mediation_chosen", "email") in texts
    assert not any("Collis" in text for text in texts.values())
    naming = sorted(key for key, text in texts.items() if "Link Mediation" in text)
    # One message (by each of the family's channels) names the provider: the acceptance.
    assert naming == [("provider_allocated", "email"), ("provider_allocated", "sms")]
    assert "Link Mediation Ltd will run the next step" in texts["provider_allocated", "email"]
