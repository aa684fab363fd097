"""Who may see and change which case: one rule for the pages, the portal, the API and the CLI."""

from __future__ import annotations

from casework.cases.context import Actor
from casework.cases.errors import NotFound, TransitionRefused
from casework.cases.words import state_words
from casework.models import Case
from casework.states import FINAL_STATES

# Who may reopen a closed or withdrawn case (see casework.cases.reopen).
REOPENERS = frozenset({"manager", "admin"})


def check_actor_may_see(case: Case, actor: Actor) -> None:
    """Provider staff see only the cases allocated to their provider.

    Another provider's case reads exactly like a case that does not exist, so a
    reference guessed in a URL reveals nothing.
    """
    if actor.is_provider and case.provider_id != actor.provider_id:
        raise NotFound(
            f"There is no case with the reference {case.reference!r}."
            " Check the reference (it looks like MED-2026-0042), or search for the family."
        )


def ended_refusal(case: Case, doing: str, actor: Actor | None = None) -> TransitionRefused | None:
    """A closed or withdrawn case takes nothing more: the refusal that says so once, and
    who can reopen it; None while the case is open."""
    if case.state not in FINAL_STATES:
        return None
    who = (
        "You can reopen it, as a manager, if it should not have ended."
        if actor is not None and actor.role in REOPENERS
        else "Only an IAS manager can reopen it."
    )
    return TransitionRefused(
        f"Cannot {doing}: {case.reference} is {state_words(case.state).lower()}. {who}",
        reopenable=True,
        reference=case.reference,
    )


def refuse_if_ended(case: Case, doing: str, actor: Actor | None = None) -> None:
    """Refuse anything on a closed or withdrawn case (see :func:`ended_refusal`).

    Checked before any other rule of a step, so a person acting on an ended case is
    told it has ended, not sent to do something first (a provider to accept an
    allocation the withdrawal ended) that would not help.
    """
    refusal = ended_refusal(case, doing, actor)
    if refusal is not None:
        raise refusal
