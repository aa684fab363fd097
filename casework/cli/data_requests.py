"""``casework data-request``: requests to correct or erase personal data, from a terminal.

The rules live in :mod:`casework.cases.data_requests`; this door parses, calls one use
case and says the result in words.
"""

from __future__ import annotations

from typing import Annotated

import typer

from casework import cases
from casework import deadlines as dl
from casework.cases import data_requests as requests
from casework.cases.words import (
    DATA_REQUEST_KIND_WORDS,
    DATA_REQUEST_STATUS_WORDS,
    DEADLINE_STATUS_WORDS,
)
from casework.cli.common import (
    AtOpt,
    JsonOpt,
    cli_actor,
    emit,
    handles_errors,
    open_session,
    parse_at,
    parse_date,
)

data_request_app = typer.Typer(
    help="Requests to correct or erase personal data (UK GDPR arts. 16 and 17).",
    no_args_is_help=True,
)
IdArg = Annotated[int, typer.Argument(help="The request's number (see `data-request list`).")]


def _manager() -> cases.Actor:
    """The operator at the terminal, acting as a manager (as for subject access)."""
    return cases.Actor(id=cli_actor().id, role="manager", channel="cli")


def _line(row: requests.RequestRow) -> str:
    r, d = row.request, row.deadline
    due = ""
    if d is not None:
        due = f", answer due by {dl.fmt(d.due_date)} ({DEADLINE_STATUS_WORDS[d.status].lower()})"
    return (
        f"number {r.id}: {row.reference}: {DATA_REQUEST_KIND_WORDS[r.kind]}, received"
        f" {dl.fmt(r.received_on)}: {DATA_REQUEST_STATUS_WORDS[r.status]}{due}"
    )


def _payload(row: requests.RequestRow) -> dict[str, object]:
    r = row.request
    return {
        "id": r.id,
        "reference": row.reference,
        "kind": r.kind,
        "status": r.status,
        "received_on": r.received_on.isoformat(),
        "due": row.deadline.due_date.isoformat() if row.deadline else None,
        "closing_record": r.closing_record,
    }


@data_request_app.command("record")
@handles_errors
def record(
    reference: Annotated[str, typer.Argument(help="The case the request is about.")],
    kind: Annotated[str, typer.Option(help="rectification or erasure.")],
    requested_by: Annotated[str, typer.Option(help="Who asked (e.g. the child's mother).")],
    received_on: Annotated[str, typer.Option(help="The day it was received, YYYY-MM-DD.")],
    what: Annotated[str, typer.Option(help="What they asked for, in their words.")],
    name: Annotated[str, typer.Option(help="Corrected name (rectification).")] = "",
    phone: Annotated[str, typer.Option(help="Corrected phone (rectification).")] = "",
    email: Annotated[str, typer.Option(help="Corrected email (rectification).")] = "",
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a request; its one-month clock starts."""
    actor = cases.Actor(id=cli_actor().id, role="adviser", channel="cli")
    with open_session() as (session, _settings):
        request = requests.record_request(
            session,
            reference,
            kind=kind,
            requested_by=requested_by,
            received_on=parse_date(received_on, "--received-on"),
            what=what,
            changes={"name": name, "phone": phone, "email": email},
            actor=actor,
            now=parse_at(at),
        )
        row = requests.get_request(session, int(request.id or 0), actor=_manager())
    emit(_payload(row), as_json, f"recorded {_line(row)}")


@data_request_app.command("list")
@handles_errors
def list_cmd(
    open_only: Annotated[bool, typer.Option("--open", help="Only those not yet answered.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Every request, oldest first."""
    with open_session() as (session, _settings):
        rows = requests.list_requests(session, actor=_manager(), open_only=open_only)
    emit(
        [_payload(r) for r in rows],
        as_json,
        "\n".join(_line(r) for r in rows) or "no requests about personal data",
    )


@data_request_app.command("decide")
@handles_errors
def decide(
    request_id: IdArg,
    approve: Annotated[bool, typer.Option("--approve/--refuse", help="The decision.")],
    basis: Annotated[str, typer.Option(help="The lawful basis for refusing.")] = "",
    at: AtOpt = None,
) -> None:
    """Approve a request, or refuse it with the lawful basis."""
    with open_session() as (session, _settings):
        requests.decide_request(
            session, request_id, approve=approve, basis=basis, actor=_manager(), now=parse_at(at)
        )
        row = requests.get_request(session, request_id, actor=_manager())
    typer.echo(_line(row))


@data_request_app.command("extend")
@handles_errors
def extend(
    request_id: IdArg,
    reason: Annotated[str, typer.Option(help="Why more time is needed.")],
    at: AtOpt = None,
) -> None:
    """Extend the time to answer by two months (once)."""
    with open_session() as (session, _settings):
        requests.extend_request(
            session, request_id, reason=reason, actor=_manager(), now=parse_at(at)
        )
        row = requests.get_request(session, request_id, actor=_manager())
    typer.echo(_line(row))


@data_request_app.command("carry-out")
@handles_errors
def carry_out(request_id: IdArg, at: AtOpt = None) -> None:
    """Carry out an approved request and write its closing record."""
    with open_session() as (session, _settings):
        requests.carry_out_request(session, request_id, actor=_manager(), now=parse_at(at))
        row = requests.get_request(session, request_id, actor=_manager())
    typer.echo(f"{_line(row)}\n{row.request.closing_record}")
