"""A case and its deadlines as the CLI prints them: JSON for scripts, lines for people."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Session

from casework import services as svc
from casework.contacts import display_phone
from casework.models import Case, Deadline, Provider


def deadline_dict(d: Deadline) -> dict[str, Any]:
    return {
        "kind": d.kind,
        "due_date": d.due_date.isoformat(),
        "due_at": d.due_at.isoformat(),
        "status": d.status,
        "citation": d.citation,
        "explanation": d.explanation,
        "closed_reason": d.closed_reason,
    }


def case_dict(session: Session, case: Case, *, detail: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "reference": case.reference,
        "kind": case.kind,
        "state": case.state,
        "version": case.version,
        "opened_at": case.opened_at.isoformat(),
        "decision_date": case.decision_date.isoformat() if case.decision_date else None,
        "decision_type": case.decision_type,
        "appeal_due": case.appeal_due.isoformat() if case.appeal_due else None,
    }
    if not detail:
        return out
    family = svc.family_of(session, case)
    allocation = svc.live_allocation(session, case)
    provider = None
    if case.provider_id is not None:
        row = session.get(Provider, case.provider_id)
        provider = {"code": row.code, "name": row.name} if row else None
    out.update(
        {
            "contact": {
                "name": family.name if family else "",
                "phone": family.phone if family else "",
                "email": family.email if family else "",
                "preferred_channels": family.channels if family else [],
            },
            "provider": provider,
            "allocation_status": allocation.status if allocation else None,
            "facts": {
                k: (v.isoformat() if isinstance(v, dt.date) else v)
                for k, v in case.model_dump().items()
                if k
                in (
                    "health_care",
                    "health_only",
                    "placement_only",
                    "la_told_on",
                    "declined_on",
                    "meeting_on",
                    "meeting_time",
                    "meeting_held_on",
                    "meeting_outcome",
                    "agreement",
                    "not_arranged_reported_on",
                    "certificate_on",
                    "certificate_type",
                    "close_outcome",
                    "withdrawn_reason",
                )
                and v not in (None, False, "")
            },
            "deadlines": [deadline_dict(d) for d in svc.case_deadlines(session, case)],
            "events": [
                {
                    "at": e.at.isoformat(),
                    "actor": e.actor,
                    "event": e.event,
                    "from": e.from_state,
                    "to": e.to_state,
                    "channel": e.channel,
                    "data": e.data,
                    "note": e.note,
                }
                for e in svc.case_events(session, case)
            ],
            "allowed_events": [name for name, _ in svc.allowed_events(case)],
        }
    )
    return out


def case_text(data: dict[str, Any]) -> str:
    lines = [
        f"{data['reference']}  {data['kind']}  state: {data['state']}  (version {data['version']})",
        f"  contact: {data['contact']['name']}  {display_phone(data['contact']['phone'])}"
        f"  {data['contact']['email']}",
    ]
    if data.get("decision_date"):
        lines.append(
            f"  LA decision: {data['decision_date']}"
            f" ({data.get('decision_type') or 'type not recorded'})"
        )
    provider = data.get("provider")
    lines.append(
        f"  provider: {provider['name']} ({data['allocation_status']})"
        if provider
        else "  provider: none"
    )
    for key, value in data.get("facts", {}).items():
        lines.append(f"  {key}: {value}")
    lines.append("  deadlines:")
    if not data["deadlines"]:
        lines.append("    none")
    for d in data["deadlines"]:
        lines.append(f"    [{d['status']:>9}] {d['kind']} due {d['due_date']} - {d['explanation']}")
        lines.append(
            f"                {d['citation']}"
            + (f"; {d['closed_reason']}" if d["closed_reason"] else "")
        )
    lines.append("  history:")
    for e in data["events"]:
        moved = f"{e['from'] or '-'} -> {e['to']}" if e["from"] != e["to"] else f"({e['to']})"
        extra = f"  {e['data']}" if e["data"] else ""
        note = f"  note: {e['note']}" if e["note"] else ""
        lines.append(
            f"    {e['at'][:16]}  {e['event']:<22} {moved}"
            f"  by {e['actor']} via {e['channel']}{extra}{note}"
        )
    lines.append(
        f"  allowed now: {', '.join(data['allowed_events']) or 'nothing (case is closed)'}"
    )
    return "\n".join(lines)
