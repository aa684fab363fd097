"""``audit verify``: prove the audit trail was not altered behind casework's back.

The chain and its check live in :mod:`casework.audit`; this door only puts the
first broken row of each case into words and exits 1 when there is one.
"""

from __future__ import annotations

import typer

from casework import audit, cases
from casework.cases.words import STAFF_EVENT_WORDS, moment_words
from casework.cli.common import JsonOpt, emit, handles_errors
from casework.config import get_settings
from casework.db import get_engine

audit_app = typer.Typer(help="The audit trail and its seals.", no_args_is_help=True)


def _sentence(found: audit.ChainBreak) -> str:
    return (
        f"{found.reference}: \u201c{cases.event_label(found.event)}\u201d recorded"
        f" {moment_words(found.at)}: {found.why}"
    )


def _staff_sentence(found: audit.StaffChainBreak) -> str:
    what = STAFF_EVENT_WORDS.get(found.event, "a change")
    return f"\u201c{what}\u201d recorded {moment_words(found.at)}: {found.why}"


@audit_app.command("verify")
@handles_errors
def audit_verify(as_json: JsonOpt = False) -> None:
    """Walk every case's audit chain and the user-administration chain; name the first row
    of each that does not match."""
    engine = get_engine(get_settings())
    with engine.connect() as connection:
        result = audit.find_breaks(connection)
        staff_rows, staff_break = audit.find_staff_breaks(connection)
    payload = {
        "rows": result.rows,
        "sealed": result.sealed,
        "cases": result.cases,
        "breaks": [
            {
                "reference": b.reference,
                "event": b.event,
                "at": b.at.isoformat(),
                "what": _sentence(b),
            }
            for b in result.breaks
        ],
        "written_at_the_same_moment": [
            {
                "reference": f.reference,
                "event": f.event,
                "at": f.at.isoformat(),
                "what": _sentence(f),
            }
            for f in result.forks
        ],
        "staff": {
            "rows": staff_rows,
            "break": None
            if staff_break is None
            else {
                "event": staff_break.event,
                "at": staff_break.at.isoformat(),
                "what": _staff_sentence(staff_break),
            },
        },
    }
    if result.breaks:
        lines = [f"the audit trail of {len(result.breaks)} case(s) does not verify:"]
        lines += [f"  {_sentence(b)}" for b in result.breaks]
    else:
        lines = [
            f"the audit trail verifies: {result.sealed:,} sealed rows"
            f" across {result.cases:,} case{'' if result.cases == 1 else 's'}"
            + (
                f" ({result.rows - result.sealed:,} older rows written before sealing began)"
                if result.rows != result.sealed
                else ""
            )
        ]
    if result.forks:
        lines.append(
            f"{len(result.forks)} row(s) follow the same earlier row as the row before them"
            " (written at the same moment; not a sign of tampering):"
        )
        lines += [f"  {_sentence(f)}" for f in result.forks]
    if staff_break is not None:
        lines.append(
            "the audit trail of user administration does not verify:"
            f" {_staff_sentence(staff_break)}"
        )
    else:
        lines.append(f"the audit trail of user administration verifies: {staff_rows:,} rows")
    emit(payload, as_json, "\n".join(lines))
    if result.breaks or staff_break is not None:
        raise typer.Exit(1)
