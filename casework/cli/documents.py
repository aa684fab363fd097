"""CLI doors to documents: list a case's, reissue a certificate, write one to a file.

Listing shows what a case's documents are (never their bytes); ``document get`` writes
one to a file, and the use case records the download in the case's audit trail, as
every other door does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from casework import cases
from casework.cases import words
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

document_app = typer.Typer(help="Documents casework made (certificates).", no_args_is_help=True)


def _document_dict(doc: cases.DocumentInfo) -> dict[str, object]:
    return {
        "id": doc.id,
        "kind": doc.kind,
        "version": doc.version,
        "file_name": doc.file_name,
        "media_type": doc.media_type,
        "size": doc.size,
        "sha256": doc.sha256,
        "created": doc.created_at.isoformat(),
        "created_by": doc.created_by,
        "certificate_number": doc.certificate_number,
        "current": doc.current,
    }


@handles_errors
def case_documents(reference: str, as_json: JsonOpt = False) -> None:
    """The case's documents: id, kind, version, SHA-256 and when each was made."""
    with open_session() as (session, _settings):
        found = cases.list_case_documents(session, reference, cli_actor())
        payload = [_document_dict(d) for d in found]

        def text() -> str:
            if not found:
                return f"{reference.strip().upper()} has no documents yet."
            lines = []
            for d in found:
                number = f" {d.certificate_number}" if d.certificate_number else ""
                replaced = "" if d.current else " (replaced by a correction)"
                lines.append(
                    f"{d.id}  {words.document_words(d.kind)}{number} version {d.version}"
                    f"{replaced}\n    made {words.moment_words(d.created_at)}"
                    f" by {words.actor_words(d.created_by)}; sha256 {d.sha256}"
                )
            return "\n".join(lines)

        emit(payload, as_json, text)


@handles_errors
def case_reissue_certificate(
    reference: str,
    number: Annotated[str, typer.Argument(help="The certificate number, e.g. MC-2026-000123.")],
    reason: Annotated[str, typer.Option("--reason", help="What was corrected.")] = "",
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Correct a certificate: a new version from the case as it is now; the old is replaced."""
    now = parse_at(at)
    with open_session() as (session, settings):
        doc = cases.reissue_certificate(
            session, reference, number, reason=reason, now=now, actor=cli_actor(), settings=settings
        )
        emit(
            {"id": doc.id, "certificate_number": doc.certificate_number, "version": doc.version},
            as_json,
            f"Certificate {doc.certificate_number} reissued as version {doc.version}"
            f" (document {doc.id}); the family is sent the new version.",
        )


@document_app.command("get")
@handles_errors
def document_get(
    document_id: Annotated[
        int, typer.Argument(help="The document's id (casework case documents).")
    ],
    out: Annotated[Path, typer.Option("--out", help="The file to write.")],
    at: AtOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write one document to a file; the download is recorded in the case's audit trail."""
    now = parse_at(at)
    if out.exists() and out.is_dir():
        fail(f"--out {out} is a folder; give a file name, e.g. {out / 'certificate.pdf'}")
    with open_session() as (session, _settings):
        doc = cases.get_document(session, document_id, cli_actor(), now)
        out.write_bytes(doc.content)
        emit(
            {"id": doc.id, "file": str(out), "size": doc.size, "sha256": doc.sha256},
            as_json,
            f"Wrote {doc.file_name} ({words.size_words(doc.size)}) to {out}.",
        )
