"""The API's request and response bodies, as pydantic models.

They are the OpenAPI document (``/api/v1/openapi.json``): precise enough to generate
clients and to fuzz (tests/web/test_schemathesis.py). Request models forbid unknown
fields and bound every string, so nonsense is a 422 naming the field, never a 500.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from casework.cases.effects import EVENTS


class FieldErrorOut(BaseModel):
    field: str
    message: str


class ErrorOut(BaseModel):
    """Every API error: what went wrong and what to do, the field to fix, the events allowed."""

    error: str = Field(description="What went wrong and what to do about it.")
    field: str | None = Field(None, description="The request field to fix, when there is one.")
    allowed: list[str] = Field(
        default_factory=list, description="On 409: the events the case allows now."
    )
    errors: list[FieldErrorOut] = Field(
        default_factory=list, description="On 422: every invalid field, not just the first."
    )


# --- Request models ----------------------------------------------------------------------


def _no_nul(value: str) -> str:
    # PostgreSQL refuses NUL in text; catching it here makes it a 422, not a 500.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


ShortText = Annotated[str, Field(max_length=200), AfterValidator(_no_nul)]
LongText = Annotated[str, Field(max_length=10_000), AfterValidator(_no_nul)]
# Every event of both flows, read from the one table that declares them, so a new
# event needs no change here; the OpenAPI document lists them as an enum.
EVENT_NAMES: tuple[str, ...] = tuple(dict.fromkeys(name for _kind, name in EVENTS))


# Any name is read here and an unknown one refused by the route, which can say which
# steps the case can take now; the document still lists the names as an enum.
EventName = Annotated[
    str,
    Field(max_length=40),
    AfterValidator(_no_nul),
    WithJsonSchema({"type": "string", "enum": list(EVENT_NAMES)}),
]
DecisionType = Literal[
    "refuse_assessment", "refuse_plan", "plan_contents", "refuse_amend", "cease_plan"
]
DataValue = Annotated[str, Field(max_length=10_000), AfterValidator(_no_nul)] | bool | None
DataKey = Annotated[str, Field(max_length=40), AfterValidator(_no_nul)]
ProviderName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]


Channel = Literal["sms", "email"]


def _both_channels() -> list[Channel]:
    return ["sms", "email"]


class IntakeIn(BaseModel):
    """What an adviser takes down on the first call or email."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["mediation", "disagreement"]
    name: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
    phone: Annotated[str, Field(max_length=40), AfterValidator(_no_nul)] = Field(
        description="Contact telephone number; required for an email request (to ring back)."
        " A UK number, or one abroad written with + and its country code; only a UK mobile"
        " is sent text messages"
    )
    channel: Literal["helpline", "email"] = Field(description="How the request arrived")
    email: Annotated[str, Field(max_length=320), AfterValidator(_no_nul)] = ""
    decision_date: dt.date | None = Field(
        None, description="The day the LA sent its decision letter (mediation)"
    )
    decision_type: DecisionType | None = None
    health_care: bool = False
    placement_only: bool = Field(
        False, description="The appeal is only about the school or college named"
    )
    summary: LongText = ""
    child_name: ShortText = ""
    preferred_channels: list[Channel] = Field(
        default_factory=_both_channels, min_length=1, max_length=2
    )
    sms_consent: bool = True
    reg32_info_given: bool | None = Field(
        None,
        description="Whether the LA's decision letter gave the mediation information reg 32"
        " requires; when it did not, the Tribunal may extend the time to appeal",
    )


class EventIn(BaseModel):
    """Move a case by an event; ``data`` takes the fields the case's allowed event lists."""

    model_config = ConfigDict(extra="forbid")

    event: EventName
    data: dict[DataKey, DataValue] = Field(default_factory=dict, max_length=20)
    note: LongText = ""
    expected_version: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="The version you read; refused with 409 if the case has moved on",
    )


class ReopenIn(BaseModel):
    """Reopen a closed or withdrawn case (managers only): why, in words."""

    model_config = ConfigDict(extra="forbid")

    reason: LongText = Field(description="Why the case is being reopened")


class AllocationIn(BaseModel):
    """Offer the case to a provider; differing from the suggestion needs override_reason."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderName = Field(description="Provider code or name, e.g. kids")
    note: LongText = ""
    override_reason: LongText = Field("", description="Why not the suggested provider")
    preferred: ProviderName | None = Field(None, description="The family's preferred provider")
    excluded: list[ProviderName] = Field(
        default_factory=list, max_length=10, description="Providers ruled out for this case"
    )
    school: ShortText = Field(
        "", description="The child's school or setting, checked against declared conflicts"
    )
    expected_version: int | None = Field(None, ge=1, le=2**31 - 1)


class AllocationResponseIn(BaseModel):
    """The provider's answer to an allocation; a decline needs a reason in ``note``."""

    model_config = ConfigDict(extra="forbid")

    answer: Literal["accept", "decline"]
    note: LongText = ""


# --- Response models ---------------------------------------------------------------------


class ProviderOut(BaseModel):
    code: str
    name: str


class ContactOut(BaseModel):
    name: str
    phone: str
    email: str
    preferred_channels: list[str]


class AllocationOut(BaseModel):
    provider: ProviderOut
    status: str = Field(description="offered, accepted, declined or ended")
    allocated_at: dt.datetime
    allocated_by: str
    responded_at: dt.datetime | None
    note: str
    override_reason: str


class DeadlineOut(BaseModel):
    kind: str
    due_date: dt.date
    due_at: dt.datetime
    status: str = Field(description="open, met, missed or cancelled")
    citation: str
    explanation: str = Field(description="How the due date was worked out")
    closed_reason: str
    days_left: int | None = Field(
        None, description="Calendar days from today (London) to the due date, for open clocks"
    )


class EventOut(BaseModel):
    at: dt.datetime
    actor: str
    event: str
    from_state: str | None
    to_state: str | None
    channel: str
    data: dict[str, Any]
    note: str


class NoteOut(BaseModel):
    """A note or logged call; provider tokens get only those the adviser shared."""

    kind: str = Field(description="note or call")
    text: str
    shared: bool = Field(description="Shared with the provider running mediation")
    call_on: dt.date | None = Field(default=None, description="The day the call happened")
    direction: str | None = Field(
        default=None, description="in: they called the IAS; out: the IAS called them"
    )
    who: str = Field(default="", description="Who was on the call")
    recorded_at: dt.datetime
    recorded_by: str


class EventFieldOut(BaseModel):
    name: str
    type: str = Field(description="date (YYYY-MM-DD), bool, text, time (HH:MM) or choice")
    label: str = Field("", description="what the field is called, in words")
    required: bool
    default: str | None = Field(None, description='"today" means the London date of the event')
    choices: list[str]
    help: str


class AllowedEventOut(BaseModel):
    event: str
    label: str
    fields: list[EventFieldOut]


class CaseSummaryOut(BaseModel):
    reference: str
    kind: str
    state: str
    version: int = Field(description="Send back as expected_version when changing the case")
    opened_at: dt.datetime
    updated_at: dt.datetime
    decision_date: dt.date | None
    decision_type: str | None
    appeal_due: dt.date | None
    provider: ProviderOut | None
    next_deadline: DeadlineOut | None


class CaseDetailOut(CaseSummaryOut):
    intake_channel: str
    summary: str
    child_name: str
    contact: ContactOut | None
    facts: dict[str, Any] = Field(description="What has been recorded on the case so far")
    allocation: AllocationOut | None
    deadlines: list[DeadlineOut]
    events: list[EventOut]
    allowed_events: list[AllowedEventOut] = Field(
        description="What this token may do to the case now, with the data each event takes"
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What the law makes late or uncertain on this case, in words",
    )
    notes: list[NoteOut] = Field(
        default_factory=list, description="Notes and calls on the case, newest first"
    )


class CasePageOut(BaseModel):
    items: list[CaseSummaryOut]
    total: int
    limit: int
    offset: int


class CandidateOut(BaseModel):
    code: str
    name: str
    open_cases: int
    capacity: float
    excluded: str | None = Field(None, description="Why it is left out, when it is")


class SuggestionOut(BaseModel):
    provider: ProviderOut | None
    reasons: list[str]
    candidates: list[CandidateOut]


class DeadlineRowOut(DeadlineOut):
    reference: str


class DeadlinePageOut(BaseModel):
    items: list[DeadlineRowOut]
    total: int
    limit: int
    offset: int


class NoticeOut(BaseModel):
    id: str = Field(description="The notice's public id")
    reference: str | None
    template: str
    recipient_role: str
    channel: str
    to_address: str
    subject: str
    status: str
    not_before: dt.datetime
    attempts: int
    created_at: dt.datetime
    sent_at: dt.datetime | None
    delivered_at: dt.datetime | None
    last_error: str


class MessageIn(BaseModel):
    """A one-off message to the family; it goes out like every other notice."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["email", "sms"] = Field(description="email or sms (a text message)")
    text: LongText = Field(description="What to tell the family")
    idempotency_key: ShortText = Field(
        "",
        max_length=100,
        description="Your key for this message: sending it again with the same key does"
        " nothing (without one, the same text within a minute is sent once)",
    )


class NoticePageOut(BaseModel):
    items: list[NoticeOut]
    total: int
    limit: int
    offset: int
