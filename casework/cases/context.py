"""Who acts, and what a change tells the code that reacts to it (notices)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from casework.config import Settings
    from casework.models import AgreementItem, Case, Deadline, Person, Provider


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who is acting and through which channel; every audit event names both."""

    id: str
    role: str = "adviser"
    channel: str = "cli"
    provider_id: int | None = None

    @property
    def is_provider(self) -> bool:
        return self.role == "provider"


@dataclass(kw_only=True)
class TransitionContext:
    """A change about to be committed, as the notice rules see it."""

    case: Case
    family: Person | None
    event: str
    from_state: str | None
    to_state: str
    data: dict[str, Any]
    now: dt.datetime
    actor: Actor
    settings: Settings
    opened: list[Deadline] = field(default_factory=list)
    provider: Provider | None = None
    # Whether ``provider`` has accepted the case: until then the family is never told
    # its name (an offer may be declined and passed on to another provider).
    provider_accepted: bool = False
    # What was agreed at mediation, for letters that say who must act by when.
    agreement_items: list[AgreementItem] = field(default_factory=list)
    # Recipient role -> id of the stored document its emails carry (e.g. the certificate).
    attachments: dict[str, int] = field(default_factory=dict)
