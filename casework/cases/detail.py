"""The one read model of a case: what every door renders."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from casework.cases.effects import EventSpec
from casework.models import (
    AgreementItem,
    Allocation,
    Case,
    CaseEvent,
    CaseNote,
    Deadline,
    DeliveryEvent,
    Notice,
    Person,
    Provider,
)


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """A document as a list shows it: everything but the bytes and the verification code."""

    id: int
    case_id: int
    kind: str
    series: str
    version: int
    file_name: str
    media_type: str
    size: int
    sha256: str
    created_by: str
    created_at: dt.datetime
    superseded_by: int | None
    certificate_number: str | None

    @property
    def current(self) -> bool:
        return self.superseded_by is None


@dataclass
class CaseDetail:
    """Everything known about a case that the person asking may see."""

    case: Case
    family: Person | None
    provider: Provider | None
    allocation: Allocation | None
    allocation_provider: Provider | None
    deadlines: list[Deadline]
    agreement_items: list[AgreementItem]
    events: list[CaseEvent]
    notices: list[Notice]
    actions: list[tuple[str, EventSpec]]
    warnings: list[str]
    view_count: int = 0
    recent_views: list[CaseEvent] = field(default_factory=list)
    # Notes and calls, newest first; a provider's view keeps only the shared ones.
    notes: list[CaseNote] = field(default_factory=list)
    # Certificates, invitations and letters, newest first, without their bytes.
    documents: list[DocumentInfo] = field(default_factory=list)
    # Steps of this state not possible yet, with what to do first (words, why).
    not_yet: list[tuple[str, str]] = field(default_factory=list)
    # Each notice's send attempts and delivery receipts, oldest first, by notice id.
    deliveries: dict[int, list[DeliveryEvent]] = field(default_factory=dict)
