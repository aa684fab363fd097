"""``casework retention plan|run|hold|release``: the retention schedule from a terminal.

The rules (what is past its date, what anonymising keeps, who may) live in
:mod:`casework.cases.retention` and :mod:`casework.cases.legal_hold`; this door parses,
calls one of them and says the result in words. Plan and run are recorded in the
operations log; a hold is recorded on the case.
"""

from __future__ import annotations

from typing import Annotated

import typer

from casework import cases
from casework.cases import legal_hold, retention
from casework.cases.words import RETENTION_RECORD_WORDS, moment_words
from casework.cli.common import (
    AtOpt,
    JsonOpt,
    cli_actor,
    emit,
    handles_errors,
    open_session,
    parse_at,
)

retention_app = typer.Typer(
    help="Retention: personal data kept no longer than the schedule in config.",
    no_args_is_help=True,
)
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why, in words (recorded).")]


def _actor() -> cases.Actor:
    """The operator at the terminal, acting as a manager (as for subject access)."""
    return cases.Actor(id=cli_actor().id, role="manager", channel="cli")


def _lines(due: list[retention.Due], verb: str, at_words: str) -> str:
    if not due:
        return f"nothing is past its retention date {at_words}"
    out = [f"{len(due):,} record{'' if len(due) == 1 else 's'} {verb} {at_words}:"]
    for d in due:
        what = RETENTION_RECORD_WORDS[d.record]
        where = f" of {d.reference}" if d.reference else ""
        out.append(f"  {what}{where} (number {d.id}): {d.reason}")
    return "\n".join(out)


def _payload(due: list[retention.Due]) -> list[dict[str, object]]:
    return [
        {"record": d.record, "id": d.id, "reference": d.reference, "reason": d.reason} for d in due
    ]


@retention_app.command("plan")
@handles_errors
def retention_plan(at: AtOpt = None, as_json: JsonOpt = False) -> None:
    """List what a retention run at --at (default: now) would anonymise (recorded)."""
    moment = parse_at(at)
    with open_session() as (session, settings):
        due = retention.plan(session, at=moment, actor=_actor(), settings=settings)
    emit(_payload(due), as_json, _lines(due, "would be anonymised", f"on {moment_words(moment)}"))


@retention_app.command("run")
@handles_errors
def retention_run(at: AtOpt = None, as_json: JsonOpt = False) -> None:
    """Anonymise everything past its retention date at --at (default: now) (recorded)."""
    moment = parse_at(at)
    with open_session() as (session, settings):
        due = retention.run(session, at=moment, actor=_actor(), settings=settings)
    emit(_payload(due), as_json, _lines(due, "anonymised", f"as at {moment_words(moment)}"))


@retention_app.command("hold")
@handles_errors
def retention_hold(
    reference: Annotated[str, typer.Argument(help="The case reference.")],
    reason: ReasonOpt,
    at: AtOpt = None,
) -> None:
    """Put a case under a legal hold: retention leaves it alone until released."""
    with open_session() as (session, _settings):
        case = legal_hold.set_legal_hold(
            session, reference, reason=reason, actor=_actor(), now=parse_at(at)
        )
    typer.echo(f"{case.reference} is under a legal hold: retention will leave it alone")


@retention_app.command("release")
@handles_errors
def retention_release(
    reference: Annotated[str, typer.Argument(help="The case reference.")],
    reason: ReasonOpt,
    at: AtOpt = None,
) -> None:
    """Lift a case's legal hold."""
    with open_session() as (session, _settings):
        case = legal_hold.clear_legal_hold(
            session, reference, reason=reason, actor=_actor(), now=parse_at(at)
        )
    typer.echo(f"{case.reference} is no longer under a legal hold")
