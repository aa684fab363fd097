"""A case and its deadlines as the CLI prints them: JSON for scripts, words for people.

Both are rendered from the one read model of a case (:func:`casework.cases.case_detail`),
the same the pages and the API render.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Session

from casework import cases
from casework import deadlines as dl
from casework.cases import words
from casework.cases.views import CASE_FACTS
from casework.contacts import display_phone
from casework.models import Case, Deadline
from casework.states import FINAL_STATES


def deadline_dict(d: Deadline) -> dict[str, Any]:
    return {
        "kind": d.kind,
        "label": words.DEADLINE_WORDS.get(d.kind, d.kind),
        "due_date": d.due_date.isoformat(),
        "due_at": d.due_at.isoformat(),
        "status": d.status,
        "citation": d.citation,
        "explanation": d.explanation,
        "closed_reason": d.closed_reason,
    }


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def case_dict(
    session: Session, case: Case, *, detail: bool = True, actor: cases.Actor | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "reference": case.reference,
        "kind": case.kind,
        "state": case.state,
        "version": case.version,
        "opened_at": case.opened_at.isoformat(),
        "decision_date": _iso(case.decision_date),
        "decision_type": case.decision_type,
        "appeal_due": _iso(case.appeal_due),
    }
    if not detail:
        return out
    from casework.cli.common import cli_actor

    view = cases.case_detail(
        session,
        case.reference,
        actor=actor or cli_actor(),
        now=dt.datetime.now(dt.UTC),
        with_notices=False,
    )
    family = view.family
    out.update(
        {
            "contact": {
                "name": family.name if family else "",
                "phone": family.phone if family else "",
                "email": family.email if family else "",
                "preferred_channels": family.channels if family else [],
            },
            "provider": (
                {"code": view.provider.code, "name": view.provider.name} if view.provider else None
            ),
            "allocation_status": view.allocation.status if view.allocation else None,
            "facts": {
                name: _iso(value)
                for name in CASE_FACTS
                if (value := getattr(case, name)) not in (None, False, "")
            },
            "agreement_items": [
                {
                    "number": i.number,
                    "description": i.description,
                    "body": i.body,
                    "matter": i.matter,
                    "due_date": i.due_date.isoformat(),
                    "done_on": _iso(i.done_on),
                    "ended": i.ended_reason or None,
                }
                for i in view.agreement_items
            ],
            "warnings": view.warnings,
            "deadlines": [deadline_dict(d) for d in view.deadlines],
            "events": [
                {
                    "at": e.at.isoformat(),
                    "actor": e.actor,
                    "event": e.event,
                    "label": cases.event_label(e.event, case.kind),
                    "from": e.from_state,
                    "to": e.to_state,
                    "channel": e.channel,
                    "data": e.data,
                    "note": e.note,
                }
                for e in view.events
            ],
            "allowed_events": [name for name, _ in view.actions],
        }
    )
    return out


def _day(iso: str | None) -> str:
    return dl.fmt(dt.date.fromisoformat(iso)) if iso else ""


def case_text(data: dict[str, Any]) -> str:
    """The case for a person at a terminal: words and dates as words, no codes."""
    lines = [
        f"{data['reference']}  {words.KIND_WORDS.get(data['kind'], data['kind'])}"
        f"  {words.state_words(data['state'])}  (version {data['version']})",
        f"  Family contact: {data['contact']['name']}  {display_phone(data['contact']['phone'])}"
        f"  {data['contact']['email']}",
    ]
    if data.get("decision_date"):
        what = words.DECISION_TYPE_WORDS.get(data.get("decision_type") or "", "not recorded")
        lines.append(f"  LA decision: {_day(data['decision_date'])} ({what})")
    provider = data.get("provider")
    lines.append(
        f"  Provider: {provider['name']}"
        f" ({words.ALLOCATION_WORDS[data['allocation_status'] or 'ended']})"
        if provider
        else "  Provider: none"
    )
    for warning in data.get("warnings", []):
        lines.append(f"  ! {warning}")
    for item in data.get("agreement_items", []):
        state = (
            f"done {_day(item['done_on'])}"
            if item["done_on"]
            else (item["ended"] or f"due {_day(item['due_date'])}")
        )
        lines.append(f"  Agreed action {item['number']}: {item['description']} ({state})")
    lines.append("  Deadlines:")
    if not data["deadlines"]:
        lines.append("    none")
    for d in data["deadlines"]:
        status = words.DEADLINE_STATUS_WORDS.get(d["status"], d["status"])
        lines.append(f"    [{status:>17}] {d['label']}: due {_day(d['due_date'])}")
        lines.append(f"        {d['explanation']} ({d['citation']})")
        if d["closed_reason"]:
            lines.append(f"        {d['closed_reason']}")
    lines.append("  History:")
    for e in data["events"]:
        at = words.moment_words(dt.datetime.fromisoformat(e["at"]))
        moved = ""
        if e["from"] is None:
            moved = words.state_words(e["to"])
        elif e["from"] != e["to"]:
            moved = f"{words.state_words(e['from'])} -> {words.state_words(e['to'])}"
        note = f"  note: {e['note']}" if e["note"] else ""
        lines.append(
            f"    {at}  {e['label']}  {moved}  {words.actor_words(e['actor'])}"
            f" via {words.CHANNEL_WORDS.get(e['channel'], e['channel'])}{note}"
        )
    allowed = "; ".join(cases.event_label(name) for name in data["allowed_events"])
    ended = data["state"] in FINAL_STATES
    nothing = (
        f"nothing (the case is {words.state_words(data['state'])})" if ended else "nothing yet"
    )
    lines.append(f"  Possible now: {allowed or nothing}")
    return "\n".join(lines)
