"""Who may see and change which case: one rule for the pages, the portal, the API and the CLI."""

from __future__ import annotations

from casework.cases.context import Actor
from casework.cases.errors import NotFound
from casework.models import Case


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
