"""The use cases: every rule of casework lives here, once, for every door.

The CLI, the pages, the portal and the API parse input, call one function of this
package and render its result. Each use case takes ``now`` and an :class:`Actor`,
runs in one transaction with its audit event, and raises a :class:`CaseworkError`
subclass that says in words what to do next.
"""

from casework.cases.advance import advance, allowed_events, describe_refusal, facts_of
from casework.cases.agreements import add_agreement_item, items_of, record_agreement_item_done
from casework.cases.allocation import (
    Suggestion,
    allocate,
    can_allocate,
    check_override,
    find_provider,
    respond_to_allocation,
    suggest,
    sync_providers,
)
from casework.cases.contact import update_contact
from casework.cases.context import Actor, TransitionContext
from casework.cases.effects import (
    EVENTS,
    EventSpec,
    event_fields,
    event_label,
    live_allocation,
    provider_events,
    spec_for,
)
from casework.cases.errors import (
    CaseworkError,
    Conflict,
    NotFound,
    NotPermitted,
    TransitionRefused,
    ValidationFailed,
)
from casework.cases.escalations import acknowledge_escalation
from casework.cases.facts import change_adviser, update_case_facts
from casework.cases.fields import EventField, parse_event_data
from casework.cases.intake import (
    DECISION_TYPES,
    INTAKE_CHANNELS,
    Intake,
    IntakeInvalid,
    check_intake,
    open_case,
)
from casework.cases.messages import send_message
from casework.cases.notes import add_note, log_call, notes_of
from casework.cases.provider_view import ListedCase, provider_cases
from casework.cases.search import CaseCriteria, FoundCase, FoundCases, find_cases
from casework.cases.views import (
    LATE_OUTSTANDING,
    STILL_DUE,
    VIEW_EVENT,
    CaseDetail,
    case_deadlines,
    case_detail,
    case_events,
    clock_urgency,
    count_cases,
    done_late,
    event_details,
    family_of,
    get_case,
    late_and_outstanding,
    list_cases,
    list_deadlines,
    next_deadlines,
    record_view,
    still_due,
    urgent_first,
)

__all__ = [
    "DECISION_TYPES",
    "EVENTS",
    "INTAKE_CHANNELS",
    "LATE_OUTSTANDING",
    "STILL_DUE",
    "VIEW_EVENT",
    "Actor",
    "CaseCriteria",
    "CaseDetail",
    "CaseworkError",
    "Conflict",
    "EventField",
    "EventSpec",
    "FoundCase",
    "FoundCases",
    "Intake",
    "IntakeInvalid",
    "ListedCase",
    "NotFound",
    "NotPermitted",
    "Suggestion",
    "TransitionContext",
    "TransitionRefused",
    "ValidationFailed",
    "acknowledge_escalation",
    "add_agreement_item",
    "add_note",
    "advance",
    "allocate",
    "allowed_events",
    "can_allocate",
    "case_deadlines",
    "case_detail",
    "case_events",
    "change_adviser",
    "check_intake",
    "check_override",
    "clock_urgency",
    "count_cases",
    "describe_refusal",
    "done_late",
    "event_details",
    "event_fields",
    "event_label",
    "facts_of",
    "family_of",
    "find_cases",
    "find_provider",
    "get_case",
    "items_of",
    "late_and_outstanding",
    "list_cases",
    "list_deadlines",
    "live_allocation",
    "log_call",
    "next_deadlines",
    "notes_of",
    "open_case",
    "parse_event_data",
    "provider_cases",
    "provider_events",
    "record_agreement_item_done",
    "record_view",
    "respond_to_allocation",
    "send_message",
    "spec_for",
    "still_due",
    "suggest",
    "sync_providers",
    "update_case_facts",
    "update_contact",
    "urgent_first",
]
