"""``casework sar export``: everything held about one person, as one ZIP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from casework import cases
from casework.cases.subject_access import export_subject_access
from casework.cli.common import AtOpt, cli_actor, fail, handles_errors, open_session, parse_at

sar_app = typer.Typer(help="Subject access: what is held about a person.", no_args_is_help=True)


@sar_app.command("export")
@handles_errors
def sar_export(
    out: Annotated[Path, typer.Option(help="The ZIP file to write.")],
    case: Annotated[str | None, typer.Option(help="A case reference of the person.")] = None,
    phone: Annotated[str | None, typer.Option(help="The person's phone number.")] = None,
    email: Annotated[str | None, typer.Option(help="The person's email address.")] = None,
    at: AtOpt = None,
) -> None:
    """Write everything held about the person to OUT (recorded on each of their cases)."""
    if out.exists():
        fail(f"{out} already exists: choose a new file name")
    actor = cases.Actor(id=cli_actor().id, role="manager", channel="cli")
    with open_session() as (session, settings):
        data = export_subject_access(
            session,
            now=parse_at(at),
            actor=actor,
            reference=case,
            phone=phone,
            email=email,
            service_name=settings.service.name,
        )
    out.write_bytes(data)
    typer.echo(f"wrote {out} ({len(data):,} bytes)")
