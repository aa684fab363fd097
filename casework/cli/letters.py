"""``casework letters list|print|posted``: the letters waiting to be posted, from a terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from casework.cases.letters_to_post import letters_waiting, mark_posted, print_all
from casework.cli.common import (
    AtOpt,
    JsonOpt,
    cli_actor,
    emit,
    fail,
    handles_errors,
    open_session,
    parse_at,
)

letters_app = typer.Typer(
    help="Letters to families who hear from us by post: list, print, mark posted.",
    no_args_is_help=True,
)


@letters_app.command("list")
@handles_errors
def list_cmd(as_json: JsonOpt = False) -> None:
    """The letters printed and waiting to be posted, oldest first."""
    with open_session() as (session, _settings):
        rows = letters_waiting(session, cli_actor())

    def text() -> str:
        if not rows:
            return "No letters are waiting to be posted."
        lines = [f"{len(rows)} letter{'s' if len(rows) != 1 else ''} to post:"]
        for row in rows:
            why = " (email and text messages failed)" if row.after_failure else ""
            lines.append(
                f"  {row.number}  {row.reference}  {row.about}  to {row.addressed_to},"
                f" {row.postcode}  printed {row.printed_on}{why}"
            )
        return "\n".join(lines)

    emit(
        [
            {
                "number": r.number,
                "reference": r.reference,
                "about": r.about,
                "addressed_to": r.addressed_to,
                "postcode": r.postcode,
                "printed_on": r.printed_on,
            }
            for r in rows
        ],
        as_json,
        text,
    )


@letters_app.command("print")
@handles_errors
def print_cmd(
    out: Annotated[Path, typer.Option("--out", help="The PDF file to write.")],
    at: AtOpt = None,
) -> None:
    """Write every letter waiting to be posted into one PDF (each one's download is audited)."""
    if out.exists():
        fail(f"{out} already exists: choose a new file name")
    with open_session() as (session, _settings):
        pdf, count = print_all(session, cli_actor(), now=parse_at(at))
    out.write_bytes(pdf)
    typer.echo(f"wrote {out}: {count} letter{'s' if count != 1 else ''} ({len(pdf):,} bytes)")


@letters_app.command("posted")
@handles_errors
def posted_cmd(
    numbers: Annotated[list[int], typer.Argument(help="The letters' numbers, from the list.")],
    on: Annotated[
        str | None, typer.Option("--on", help="The day they were posted (default today).")
    ] = None,
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record letters as posted (today, or --on YYYY-MM-DD)."""
    with open_session() as (session, _settings):
        done = mark_posted(session, numbers, cli_actor(), now=parse_at(at), posted_on=on)
    emit(
        [{"number": r.number, "reference": r.reference, "posted_on": r.posted_on} for r in done],
        as_json,
        lambda: "\n".join(
            f"{r.reference}: letter {r.number} posted on {r.posted_on}" for r in done
        ),
    )
