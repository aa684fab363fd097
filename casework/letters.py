"""What a letter must say about the law for one case on one day, worked out from its dates.

Templates word a letter; this module decides the facts the wording turns on, so
that no letter can tell a family a date that has already passed as if it were
still ahead, or leave out a time limit that still runs. domain.md's "Letters must
not misstate the law" is the rule book:

- a date that has passed is reported as passed ("the 2-month limit passed on ..."),
  never offered as a date to meet, so every fact below comes with a ``*_passed``
  flag computed against the day the notice is written;
- the appeal deadline shown is the one that certainly holds (from the first
  certificate); a later certificate's date is given as a possibility only;
- a health-only case names the ICB and counts from the day it was told.

The adviser's case page shows the same warnings through :func:`case_page_warnings`.
Everything here is pure: dates in, words and flags out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from casework import deadlines as dl

DEFAULT_ICB_NAME = "the NHS Integrated Care Board (ICB)"
# A meeting recorded this many days or more before the day it was arranged for is
# probably a mistyped date: the adviser is asked to check it.
EARLY_MEETING_DAYS = 7
_APPEAL_TAIL = "appeal must reach the Tribunal by "


@dataclass(frozen=True)
class AgreementLine:
    """One thing agreed at mediation: what, who must act, and by when (reg 42)."""

    description: str
    body: str  # "la" or "icb"
    due: dt.date | None = None
    done_on: dt.date | None = None


@dataclass(frozen=True)
class LetterFacts:
    """The dates and flags of one case that letters depend on (all optional but kind)."""

    kind: str = "mediation"
    placement_only: bool = False
    health_care: bool = False
    health_only: bool = False
    reg32_info_given: bool | None = None
    decision_date: dt.date | None = None
    chose_on: dt.date | None = None
    declined_on: dt.date | None = None
    la_told_on: dt.date | None = None
    icb_told_on: dt.date | None = None
    icb_name: str = DEFAULT_ICB_NAME
    meeting_on: dt.date | None = None
    meeting_held_on: dt.date | None = None
    meeting_outcome: str | None = None
    certificate_on: dt.date | None = None  # the first certificate: it fixes the safe date
    certificate_type: str | None = None
    second_certificate_on: dt.date | None = None
    appeal_due: dt.date | None = None
    close_outcome: str | None = None
    agreement_items: tuple[AgreementLine, ...] = field(default_factory=tuple)


# --- Reading facts from a case row and an event's data ---------------------------------


def as_date(value: Any) -> dt.date | None:
    """A date from a date, a datetime or an ISO string (event data arrives either way)."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return dl.local_date(value) if value.tzinfo else value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _get(source: Any, name: str) -> Any:
    if source is None:
        return None
    if type(source) is dict:  # the usual case, without the slower check against Mapping
        return source.get(name)
    if isinstance(source, Mapping):
        return source.get(name)
    return getattr(source, name, None)


def _first(name: str, *sources: Any) -> Any:
    for source in sources:
        value = _get(source, name)
        if value is not None and value != "":
            return value
    return None


def agreement_lines(items: Iterable[Any] | None) -> tuple[AgreementLine, ...]:
    """Agreement items from rows, dataclasses or dicts (keys as in the use case)."""
    out = []
    for item in items or ():
        description = str(_first("description", item) or "").strip()
        if not description:
            continue
        body = str(_first("body", item) or "la").lower()
        due = as_date(_first("due_on", item) or _first("due", item) or _first("due_date", item))
        if due is None:
            due = as_date(_first("agreed_due_on", item))
        out.append(AgreementLine(description, body, due, as_date(_first("done_on", item))))
    return tuple(out)


def facts_from(
    case: Any,
    data: Mapping[str, Any] | None = None,
    *,
    event: str | None = None,
    agreement_items: Iterable[Any] | None = None,
    icb_name: str | None = None,
) -> LetterFacts:
    """LetterFacts from a case row and the event being recorded (the event's data wins).

    Fields the case table may not have yet (``chose_on``, ``second_certificate_on``,
    ``reg32_info_given``...) are read if present and otherwise left unknown, which the
    templates word safely ("call us for your date").
    """
    data = data or {}

    def date_of(*names: str) -> dt.date | None:
        for name in names:
            value = as_date(_first(name, data, case))
            if value is not None:
                return value
        return None

    reg32 = _first("reg32_info_given", data, case)
    return LetterFacts(
        kind=str(_get(case, "kind") or "mediation"),
        placement_only=bool(_first("placement_only", data, case)),
        health_care=bool(_first("health_care", data, case)),
        health_only=bool(_first("health_only", data, case)),
        reg32_info_given=None if reg32 is None else bool(reg32),
        decision_date=date_of("decision_date"),
        chose_on=date_of("chose_on"),
        declined_on=date_of("declined_on"),
        la_told_on=date_of("la_told_on"),
        icb_told_on=date_of("icb_told_on"),
        icb_name=str(_first("icb_name", data, case) or icb_name or DEFAULT_ICB_NAME),
        meeting_on=date_of("meeting_on"),
        meeting_held_on=date_of("meeting_held_on"),
        meeting_outcome=_first("meeting_outcome", case)
        or (data.get("outcome") if event == "record_meeting" else None),
        certificate_on=as_date(_get(case, "certificate_on")) or as_date(data.get("certificate_on")),
        certificate_type=_first("certificate_type", case, data),
        second_certificate_on=date_of("second_certificate_on"),
        appeal_due=as_date(_get(case, "appeal_due")),
        close_outcome=_first("close_outcome", case)
        or (data.get("outcome") if event == "close" else None),
        agreement_items=agreement_lines(agreement_items),
    )


# --- The facts in words ------------------------------------------------------------------


def appeal_working(explanation: str) -> str:
    """An appeal clock's working without its closing "must reach the Tribunal by" clause.

    The letter says the date in its own sentence (as passed, when it has), so the
    working must not repeat it as a date to meet: "...; later date: 10 May 2027,
    so Monday 10 May 2027, 5pm".
    """
    parts = [p.strip() for p in explanation.split(";") if p.strip()]
    if parts and parts[-1].startswith(_APPEAL_TAIL):
        final = parts.pop().removeprefix(_APPEAL_TAIL)
        if not parts:
            return final
        day, _, time = final.partition(", ")
        if parts[-1].endswith(day):  # a rolled date already ends with it: add the time only
            return "; ".join(parts) + (f", {time}" if time else "")
        return "; ".join(parts) + f", so {final}"
    return explanation


def reg33_window(facts: LetterFacts) -> dt.date | None:
    """The end of the family's 2 months to contact the adviser (reg 33), if it applies."""
    if facts.kind != "mediation" or facts.placement_only or facts.decision_date is None:
        return None
    return dl.add_months(facts.decision_date, 2)


def reg33_passed(facts: LetterFacts, today: dt.date) -> bool:
    """The family told us its choice after the window, or has not yet and it is over."""
    window = reg33_window(facts)
    if window is None:
        return False
    said = facts.chose_on or facts.declined_on
    return (said > window) if said is not None else today > window


def appeal_due(facts: LetterFacts) -> dt.date | None:
    """The deadline that certainly holds: as recorded, or from decision and first certificate."""
    if facts.appeal_due is not None:
        return facts.appeal_due
    if facts.decision_date is None:
        return None
    if facts.certificate_on is not None:
        return dl.appeal_deadline(facts.decision_date, facts.certificate_on)
    if facts.placement_only:
        return dl.appeal_deadline(facts.decision_date)
    return None


def deemed_then_meeting(facts: LetterFacts) -> bool:
    """A certificate without mediation was issued and the meeting happened after all."""
    return facts.certificate_type == "not_arranged" and (
        facts.meeting_held_on is not None or facts.second_certificate_on is not None
    )


def _with_5pm(d: dt.date) -> str:
    return f"{dl.fmt(d)}, 5pm"


def _meeting_limit(facts: LetterFacts) -> dt.date | None:
    told = facts.icb_told_on if facts.health_only else facts.la_told_on
    if told is None:
        return None
    return dl.mediation_meeting_deadline(told, health_only=facts.health_only).due


def letter_context(
    facts: LetterFacts,
    today: dt.date,
    *,
    appeal_explanation: str | None = None,
) -> dict[str, Any]:
    """The keys family letters use (see the templates' ``partials/law.j2``).

    Every date is words ("Thursday 24 December 2026"); every date a letter could
    present as one to meet carries a ``*_passed`` flag, true when it is before
    ``today`` (the day the notice is written).
    """
    out: dict[str, Any] = {
        "placement_only": facts.placement_only,
        "health_care": facts.health_care,
        "health_only": facts.health_only,
        "icb_name": facts.icb_name,
        "reg32_missing": facts.reg32_info_given is False,
        "window_passed": reg33_passed(facts, today),
        "deemed_then_meeting": deemed_then_meeting(facts),
    }
    if facts.decision_date is not None:
        out["decision_text"] = dl.fmt(facts.decision_date)
        from_decision = dl.appeal_deadline(facts.decision_date)
        out["appeal_window_text"] = _with_5pm(from_decision)
        out["appeal_window_passed"] = from_decision < today
    window = reg33_window(facts)
    if window is not None:
        out["window_text"] = dl.fmt(window)
    said = facts.chose_on or facts.declined_on
    if said is not None:
        out["said_text"] = dl.fmt(said)
    if facts.chose_on is not None:
        out["chose_text"] = dl.fmt(facts.chose_on)

    due = appeal_due(facts)
    if due is not None:
        out["appeal_due_text"] = _with_5pm(due)
        out["appeal_due_passed"] = due < today
        if facts.decision_date is not None and (
            appeal_explanation is None or facts.second_certificate_on is not None
        ):
            # The safe date's working: decision and the FIRST certificate.
            appeal_explanation = dl.appeal_clock(
                facts.decision_date, facts.certificate_on
            ).explanation
        if appeal_explanation:
            out["appeal_working"] = appeal_working(appeal_explanation)
    if facts.certificate_on is not None:
        out["certificate_text"] = dl.fmt(facts.certificate_on)
    if facts.certificate_type:
        out["certificate_type"] = facts.certificate_type
    if facts.second_certificate_on is not None:
        out["second_certificate_text"] = dl.fmt(facts.second_certificate_on)
        if facts.decision_date is not None and due is not None:
            later = dl.appeal_deadline(facts.decision_date, facts.second_certificate_on)
            if later > due:
                out["later_appeal_due_text"] = _with_5pm(later)

    # Who must arrange the meeting, from when (reg 37 / health-only: the ICB).
    if facts.la_told_on is not None:
        out["la_told_text"] = dl.fmt(facts.la_told_on)
    if facts.icb_told_on is not None:
        out["icb_told_text"] = dl.fmt(facts.icb_told_on)
    elif facts.health_care and facts.la_told_on is not None:
        notify = dl.icb_notification_deadline(facts.la_told_on).due
        out["icb_notify_due_text"] = dl.fmt(notify)
        out["icb_notify_due_passed"] = notify < today
    limit = _meeting_limit(facts)
    if limit is not None:
        out["meeting_limit_text"] = dl.fmt(limit)
        out["meeting_limit_passed"] = limit < today
    if facts.meeting_held_on is not None:
        out["meeting_held_text"] = dl.fmt(facts.meeting_held_on)

    # What was agreed (reg 42), who must act and by when.
    items = []
    for item in facts.agreement_items:
        who = facts.icb_name if item.body == "icb" else "the local authority"
        line: dict[str, Any] = {"description": item.description, "body_name": who}
        line["done"] = item.done_on is not None
        if item.due is not None:
            line["due_text"] = dl.fmt(item.due)
            line["due_passed"] = item.due < today
        items.append(line)
    out["agreement_items"] = items
    if facts.health_only and facts.meeting_held_on is not None and items:
        tell = dl.icb_tells_la_of_agreement(facts.meeting_held_on).due
        out["icb_tells_la_due_text"] = dl.fmt(tell)
        out["icb_tells_la_due_passed"] = tell < today
    if facts.close_outcome:
        out["close_outcome"] = facts.close_outcome
    return out


def case_page_warnings(facts: LetterFacts, today: dt.date) -> list[str]:
    """What the adviser must see on the case page: the same warnings the family is given."""
    warnings = []
    window = reg33_window(facts)
    if window is not None and reg33_passed(facts, today):
        warnings.append(
            f"The family's 2-month limit to contact the mediation adviser passed on"
            f" {dl.fmt(window)}. Advise them and issue a certificate if they ask, but tell"
            " them their appeal may be late and that the Tribunal decides whether to accept it."
        )
    if facts.reg32_info_given is False:
        warnings.append(
            "The local authority's decision letter did not give the information regulation 32"
            " requires (the mediation adviser's contact, the time limits, the right to appeal)."
            " The Tribunal may extend the time to appeal for that reason."
        )
    due = appeal_due(facts)
    if due is not None and due < today:
        warnings.append(
            f"The appeal deadline passed on {_with_5pm(due)}. The Tribunal decides whether to"
            " accept a late appeal."
        )
    if (
        facts.meeting_on is not None
        and facts.meeting_held_on is not None
        and (facts.meeting_on - facts.meeting_held_on).days >= EARLY_MEETING_DAYS
    ):
        warnings.append(
            f"The meeting is recorded as held on {dl.fmt(facts.meeting_held_on)},"
            f" {(facts.meeting_on - facts.meeting_held_on).days} days before the date it was"
            f" arranged for ({dl.fmt(facts.meeting_on)}). If that is a mistake, record the"
            " meeting again with the right date: the certificate's clock counts from it."
        )
    if facts.health_only and facts.la_told_on is not None and facts.icb_told_on is None:
        warnings.append(
            "Only health care is in issue, so the ICB must arrange the meeting within 30 days"
            " of the day it was told. That day is not recorded yet: record it as soon as it is"
            " known. The local authority must tell the ICB within 3 working days."
        )
    if deemed_then_meeting(facts):
        ctx = letter_context(facts, today)
        later = ctx.get("later_appeal_due_text")
        safe = ctx.get("appeal_due_text", "the date from the first certificate")
        warnings.append(
            "The meeting took place after the certificate without mediation. The later"
            " certificate may give a later appeal date"
            + (f" ({later})" if later else "")
            + f" that only the Tribunal can confirm; the family has been given the safe date,"
            f" {safe}, from the first certificate."
        )
    return warnings


def case_page_warnings_for(case: Any, today: dt.date, **facts_kw: Any) -> list[str]:
    """:func:`case_page_warnings` straight from a case row (what the case page calls)."""
    return case_page_warnings(facts_from(case, **facts_kw), today)
