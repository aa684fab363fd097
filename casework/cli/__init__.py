"""The operator CLI: every use case from a terminal, for people and for tests.

Every command takes ``--json``; refusals exit non-zero with one line saying what to
do (see :mod:`casework.cli.common` for the exit codes). The commands live by area:
:mod:`~casework.cli.cases` (cases and deadlines), :mod:`~casework.cli.users` (people
and API tokens), :mod:`~casework.cli.ops` (database, calendar, serving, the
scheduler, the outbox), :mod:`~casework.cli.backup` (backup and restore) and
:mod:`~casework.cli.audit` (verifying the audit trail). Registration order here is
the order ``--help`` lists them.
"""

from __future__ import annotations

import typer

from casework.cli import cases, documents, ops
from casework.cli.audit import audit_app
from casework.cli.backup import backup_cmd, restore_cmd
from casework.cli.data_requests import data_request_app
from casework.cli.letters import letters_app
from casework.cli.reports import report_app
from casework.cli.retention import retention_app
from casework.cli.sar import sar_app
from casework.cli.users import user_app

app = typer.Typer(
    help="casework: SEND disagreement-resolution and mediation cases and their legal clocks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(ops.db_app, name="db")
cases.case_app.command("documents")(documents.case_documents)
cases.case_app.command("reissue-certificate")(documents.case_reissue_certificate)
app.add_typer(cases.case_app, name="case")
app.add_typer(documents.document_app, name="document")
app.add_typer(ops.calendar_app, name="calendar")
app.add_typer(user_app, name="user")
app.add_typer(report_app, name="report")
app.add_typer(sar_app, name="sar")
app.command("deadlines")(cases.deadlines_cmd)
app.command("serve")(ops.serve)
app.command("tick")(ops.tick)
app.command("digest")(ops.digest)
app.command("worker")(ops.worker)
app.add_typer(ops.notices_app, name="notices")
app.add_typer(letters_app, name="letters")
app.command("backup")(backup_cmd)
app.command("restore")(restore_cmd)
app.add_typer(audit_app, name="audit")
app.add_typer(retention_app, name="retention")
app.add_typer(data_request_app, name="data-request")


def main() -> None:  # pragma: no cover - console entry point alias
    app()


__all__ = ["app", "main"]
